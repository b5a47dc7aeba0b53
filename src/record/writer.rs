//! The one writer thread: drains the queue in batches, one transaction per batch, extends the
//! hash chain, then answers the requests waiting for their commit (group commit).
//!
//! A failed transaction (disk full, I/O error) is rolled back whole: the chain state goes back
//! to the last committed event, waiting canaries hear the error (and are not served), and the
//! dropped events are counted. The thread ends when every sender is gone and the queue is empty.

use super::event::{chain_next, ip_commitment, Chained, Event, Mint};
use super::feed::{depth_of, status_of, Seen};
use super::headers::HeaderSets;
use super::{privacy, Record, RecordError};
use crate::config::{RecordConfig, Synchronous};
use crate::metrics::Metrics;
use crate::store::{now_ms, tokens, Store, StoreError};
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const POOL_COUNTER: &str = "identity_pool_next";

/// The running writer; `join` waits for it to drain and stop once all senders are dropped,
/// then for the checkpointer, whose connection, the last to close, checkpoints the rest.
pub struct WriterHandle {
    thread: std::thread::JoinHandle<()>,
    checkpointer: std::thread::JoinHandle<()>,
}

impl WriterHandle {
    pub fn join(self) {
        let _ = self.thread.join();
        self.checkpointer.thread().unpark();
        let _ = self.checkpointer.join();
    }
}

/// Where the chain stands: the id the next event gets and the chain value before it.
#[derive(Clone, Copy)]
struct ChainHead {
    next_id: i64,
    prev: [u8; 32],
}

impl ChainHead {
    fn load(conn: &Connection) -> Result<ChainHead, StoreError> {
        let last: Option<(i64, Option<Vec<u8>>)> = conn
            .query_row(
                "SELECT id, chain FROM events ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let anchor: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT event_id, chain FROM chain_anchors ORDER BY event_id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let mut head = ChainHead {
            next_id: 1,
            prev: [0; 32],
        };
        for (id, chain) in [last.map(|(id, c)| (id, c.unwrap_or_default())), anchor]
            .into_iter()
            .flatten()
        {
            if id >= head.next_id {
                head.next_id = id + 1;
                head.prev = chain.try_into().unwrap_or([0; 32]);
            }
        }
        Ok(head)
    }
}

struct Writer {
    conn: Connection,
    head: ChainHead,
    metrics: Arc<Metrics>,
    config: RecordConfig,
    ip_key: [u8; 32],
    rng: rand_chacha::ChaCha20Rng,
    last_purge: Option<Instant>,
    /// Where committed events go as the detector reads them, once it asked (`Record::Feed`).
    feed: Option<std::sync::mpsc::SyncSender<Vec<Seen>>>,
    header_sets: HeaderSets,
    /// With `record.synchronous = "full"`: whether the connection's next commit is synced
    /// (FULL) or not (NORMAL). `None` when every commit is NORMAL.
    synced: Option<bool>,
}

/// Opens the writer's own connection to the store in `data_dir` and starts the thread.
pub fn start(
    data_dir: &Path,
    config: &RecordConfig,
    secret: [u8; 32],
    metrics: Arc<Metrics>,
) -> Result<(super::Recorder, WriterHandle), StoreError> {
    let store = Store::open(data_dir)?;
    let conn = store.into_conn();
    conn.pragma_update(None, "synchronous", config.synchronous.pragma())?;
    // A batch touches thousands of index pages: a small page cache spills them to the WAL
    // mid-transaction. 64 MiB keeps a batch in memory. Checkpoints (copying the WAL into the
    // database, with its fsync) run on their own thread, beside the writer: on the writer they
    // held the queue for up to a quarter of a second every ~40 MB of WAL.
    conn.pragma_update(None, "cache_size", -65_536)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
    let checkpoint_conn = Store::open(data_dir)?.into_conn();
    let head = ChainHead::load(&conn)?;
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    metrics
        .queue_capacity
        .store(config.queue_capacity as u64, Relaxed);
    let mut writer = Writer {
        conn,
        head,
        metrics: metrics.clone(),
        config: config.clone(),
        ip_key: privacy::ip_key(&secret),
        rng: rand_chacha::ChaCha20Rng::from_os_rng(),
        last_purge: None,
        feed: None,
        header_sets: HeaderSets::default(),
        synced: (config.synchronous == Synchronous::Full).then_some(true),
    };
    let ticker = tx.downgrade();
    let interval = Duration::from_secs(config.purge_interval_secs.min(60));
    std::thread::Builder::new()
        .name("faceprobe-tick".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            match ticker.upgrade() {
                Some(tx) => {
                    let _ = tx.try_send(Record::Tick);
                }
                None => return,
            }
        })
        .map_err(|e| StoreError::Thread {
            what: "recorder's timer",
            source: e,
        })?;
    let alive = tx.downgrade();
    let checkpointer = std::thread::Builder::new()
        .name("faceprobe-checkpoint".into())
        .spawn({
            let metrics = metrics.clone();
            move || checkpoints(checkpoint_conn, alive, &metrics)
        })
        .map_err(|e| StoreError::Thread {
            what: "recorder's checkpointer",
            source: e,
        })?;
    let thread = std::thread::Builder::new()
        .name("faceprobe-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Thread {
            what: "writer",
            source: e,
        })?;
    Ok((
        super::Recorder {
            tx,
            metrics: metrics.clone(),
            writer: thread.thread().clone(),
        },
        WriterHandle {
            thread,
            checkpointer,
        },
    ))
}

type Ack = oneshot::Sender<Result<i64, RecordError>>;

/// How often the checkpointer copies what the WAL holds into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL pages (4 KiB: ~80 MB) past which the writer checkpoints itself, the checkpointer having
/// fallen behind.
const WRITER_CHECKPOINT_PAGES: i64 = 20_000;

/// The checkpointer: a passive checkpoint every `CHECKPOINT_EVERY` (it never blocks the writer,
/// which appends to the WAL meanwhile and starts it over when it finds all of it copied — under
/// continuous load, when a writer commit always lands during this checkpoint, that is after the
/// writer's own checkpoint at `WRITER_CHECKPOINT_PAGES`, which then has little left to copy),
/// until the recorder is gone; its connection, closed after the writer's, checkpoints what is
/// left. What each checkpoint found is published (`faceprobe_wal_pages*`). A failure is logged
/// once until checkpoints work again (a full disk fails them all).
fn checkpoints(conn: Connection, alive: mpsc::WeakSender<Record>, metrics: &Metrics) {
    let mut failing = false;
    while alive.upgrade().is_some() {
        std::thread::park_timeout(CHECKPOINT_EVERY);
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done.map(|(pages, copied)| {
            // -1: this one could not run (the writer was checkpointing); the figures stay.
            if pages >= 0 {
                metrics.wal_pages.store(pages, Relaxed);
                metrics.wal_pages_checkpointed.store(copied, Relaxed);
            }
        }) {
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    error = %e,
                    "checkpoint failed (is the disk full?); the WAL grows until one succeeds, \
                     and the writer checkpoints itself past ~80 MB"
                );
            }
            Ok(()) if failing => {
                failing = false;
                tracing::info!("checkpoints work again");
            }
            _ => {}
        }
    }
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Record>) {
        // Purge once at start, so a deployment that restarts often still honours the window.
        self.purge_if_due(true);
        let mut batch = Vec::with_capacity(self.config.batch_max);
        let short = Duration::from_micros(self.config.commit_linger_us);
        let long = Duration::from_micros(self.config.background_linger_us).max(short);
        while let Some(first) = rx.blocking_recv() {
            let opened = Instant::now();
            // Evidence, an awaited record or a flush in the batch: its commit must reach the
            // disk before anyone is answered.
            let mut durable = urgent(&first);
            batch.push(first);
            // Group commit: a commit (and its fsync) costs far more than an insert, so a batch
            // stays open for what arrives meanwhile: up to `commit_linger_us` when something
            // in it is evidence or awaited, else up to `background_linger_us`.
            loop {
                while batch.len() < self.config.batch_max {
                    match rx.try_recv() {
                        Ok(r) => {
                            durable |= urgent(&r);
                            batch.push(r);
                        }
                        Err(_) => break,
                    }
                }
                let linger = if durable { short } else { long };
                let waited = opened.elapsed();
                if batch.len() >= self.config.batch_max || waited >= linger || rx.is_closed() {
                    break;
                }
                // Woken early by a sender of evidence or of an awaited record, or when a quarter
                // of the queue waits (`Recorder` unparks this thread); page and asset events do
                // not wake it otherwise.
                std::thread::park_timeout((linger - waited).min(Duration::from_millis(5)));
            }
            self.metrics.queue_depth.store(rx.len() as i64, Relaxed);
            let tick = self.write_batch(&mut batch, durable);
            if tick {
                self.purge_if_due(false);
            }
        }
        tracing::debug!("recorder drained and stopped");
    }

    /// Writes one batch in one transaction; returns whether a tick was in it. With
    /// `record.synchronous = "full"`, the commit is synced to the disk when the batch is
    /// `durable` (it holds evidence, an awaited record or a flush); a batch of only page and
    /// asset events is not: the next synced commit, or the checkpointer's next checkpoint
    /// (which syncs the WAL first), makes it durable with everything before it. A power loss
    /// can so lose the latest page and asset events, never a committed canary, and what it
    /// loses is the end of the chain, never a piece in its middle.
    fn write_batch(&mut self, batch: &mut Vec<Record>, durable: bool) -> bool {
        let started = Instant::now();
        let before = self.head;
        let mut acks: Vec<(Ack, i64)> = Vec::new();
        let mut flushes = Vec::new();
        let mut events = 0u64;
        let mut tick = false;
        let mut new_feed = None;
        // What the detector gets of this batch: every event, or (without a feed) nothing.
        let mut seen = self.feed.as_ref().map(|_| Fed::default());
        let result = (|| -> Result<(), rusqlite::Error> {
            if let Some(synced) = self.synced.as_mut() {
                if *synced != durable {
                    let level = if durable { "FULL" } else { "NORMAL" };
                    self.conn.pragma_update(None, "synchronous", level)?;
                    *synced = durable;
                }
            }
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut failed = None;
            // Prepared once per batch (looking the statement up per event hashed its text).
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            for record in batch.drain(..) {
                // After a failure the rest of the batch is only answered, not written.
                let step = match record {
                    Record::Event(event, ack) => {
                        if let Some(ack) = ack {
                            acks.push((ack, self.head.next_id));
                        }
                        events += 1;
                        match failed {
                            None => insert_event(
                                &tx,
                                &mut insert,
                                &mut self.head,
                                &mut self.rng,
                                &mut self.header_sets,
                                *event,
                                seen.as_mut(),
                            )
                            .map(|_| ()),
                            Some(_) => Ok(()),
                        }
                    }
                    Record::Flush(ack) => {
                        flushes.push(ack);
                        Ok(())
                    }
                    Record::Tick => {
                        tick = true;
                        Ok(())
                    }
                    Record::Feed(feed) => {
                        // The events after it in this batch already go to the detector.
                        new_feed = Some(feed);
                        seen.get_or_insert_with(Fed::default);
                        Ok(())
                    }
                    _ if failed.is_some() => Ok(()),
                    Record::Robots {
                        sha256,
                        body,
                        source,
                    } => tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO robots (sha256, body, source, first_served_ms)
                             VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut s| s.execute(params![&sha256[..], body, source, now_ms()]))
                        .map(|_| ()),
                    Record::Identities {
                        client_key,
                        assigned,
                        pool_next,
                        ts_ms,
                    } => store_identities(&tx, &client_key, &assigned, pool_next, ts_ms)
                        .map_err(store_to_sql),
                };
                if let (Err(e), None) = (step, &failed) {
                    failed = Some(e);
                }
            }
            drop(insert);
            match failed {
                Some(e) => Err(e),
                None => tx.commit(),
            }
        })();
        let seconds = started.elapsed().as_secs_f64();
        if new_feed.is_some() {
            self.feed = new_feed;
        }
        match result {
            Ok(()) => {
                self.metrics.events_written.fetch_add(events, Relaxed);
                self.metrics.batch(seconds);
                if self.synced == Some(true) {
                    self.metrics.synced_commits.fetch_add(1, Relaxed);
                }
                for (ack, id) in acks {
                    let _ = ack.send(Ok(id));
                }
                if let (Some(feed), Some(seen)) = (&self.feed, seen) {
                    for chunk in seen.0 {
                        // Full: the detector reads this piece from the store instead.
                        if let Err(std::sync::mpsc::TrySendError::Disconnected(_)) =
                            feed.try_send(chunk)
                        {
                            self.feed = None;
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                self.head = before;
                self.header_sets.forget();
                self.metrics.write_errors.fetch_add(1, Relaxed);
                self.metrics.events_dropped.fetch_add(events, Relaxed);
                tracing::error!(
                    error = %e,
                    events,
                    "recorder: a batch could not be written and was rolled back \
                     (is the disk full?); waiting canaries are refused, not served unrecorded"
                );
                for (ack, _) in acks {
                    let _ = ack.send(Err(RecordError::Write(e.to_string())));
                }
                // Do not spin on a failing disk; the queue holds what arrives meanwhile.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
        tick
    }

    fn purge_if_due(&mut self, force: bool) {
        let interval = Duration::from_secs(self.config.purge_interval_secs);
        if !force && self.last_purge.is_some_and(|t| t.elapsed() < interval) {
            return;
        }
        self.last_purge = Some(Instant::now());
        let now = now_ms();
        match privacy::run(&mut self.conn, &self.ip_key, &self.config, now) {
            Ok(done) => {
                self.metrics
                    .ips_pseudonymized
                    .fetch_add(done.pseudonymized, Relaxed);
                self.metrics.events_expired.fetch_add(done.expired, Relaxed);
                if done.header_sets_expired > 0 {
                    self.header_sets.forget();
                }
                if done.pseudonymized + done.expired + done.tokens_expired > 0 {
                    tracing::info!(
                        pseudonymized = done.pseudonymized,
                        expired = done.expired,
                        tokens_expired = done.tokens_expired,
                        "privacy job: raw addresses past record.raw_ip_hours replaced by pseudonyms, \
                         events past record.retention_days deleted"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "privacy job failed; it will run again"),
        }
    }
}

fn store_identities(
    tx: &Transaction,
    client_key: &str,
    assigned: &[(u64, u64)],
    pool_next: u64,
    ts_ms: i64,
) -> Result<(), StoreError> {
    for (slot, seed) in assigned {
        tokens::assign_identity(tx, client_key, *seed, *slot, ts_ms)?;
    }
    if pool_next > tokens::meta_u64(tx, POOL_COUNTER)?.unwrap_or(0) {
        tokens::set_meta(tx, POOL_COUNTER, &pool_next.to_string())?;
    }
    Ok(())
}

fn store_to_sql(e: StoreError) -> rusqlite::Error {
    match e {
        StoreError::Sql(e) => e,
        other => rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(
            other.to_string(),
        ))),
    }
}

/// Whether a record must be committed soon: someone waits for it (a canary fetch, a flush), or
/// it is evidence (canary, trap, robots.txt), which a crash must not take with it.
fn urgent(r: &Record) -> bool {
    match r {
        Record::Event(event, ack) => ack.is_some() || event.kind().is_evidence(),
        Record::Flush(_) | Record::Robots { .. } => true,
        Record::Identities { .. } | Record::Tick | Record::Feed(_) => false,
    }
}

/// Inserts one event at the head of the chain, then the tokens it minted.
/// The repeated headers go to `header_sets` (`headers::HeaderSets`), the event names its set.
const INSERT_EVENT: &str =
    "INSERT INTO events (id, ts_ms, client_ip, ip_nonce, ip_commit, client_key,
    method, host, path, query, status, bytes, duration_us, referer, cookie_sent, kind, token,
    robots_sha256, chain, header_set)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20)";

fn insert_event(
    tx: &Transaction,
    insert: &mut rusqlite::CachedStatement,
    head: &mut ChainHead,
    rng: &mut rand_chacha::ChaCha20Rng,
    header_sets: &mut HeaderSets,
    event: Event,
    seen: Option<&mut Fed>,
) -> Result<i64, rusqlite::Error> {
    let id = head.next_id;
    let (ip, nonce, commit) = match event.ip {
        Some(ip) => {
            let text = ip.to_string();
            let nonce: [u8; 16] = rng.random();
            let commit = ip_commitment(&text, &nonce);
            (Some(text), Some(nonce), Some(commit.to_vec()))
        }
        None => (None, None, None),
    };
    let c = Chained {
        id,
        ts_ms: event.ts_ms,
        ip_commit: commit,
        client_key: event.client_key,
        method: event.method,
        host: event.host,
        path: event.path,
        query: event.query,
        status: i64::from(event.status),
        bytes: event.bytes as i64,
        duration_us: event.duration_us as i64,
        user_agent: event.user_agent,
        referer: event.referer,
        accept: event.accept,
        accept_language: event.accept_language,
        accept_encoding: event.accept_encoding,
        sec_fetch_site: event.sec_fetch_site,
        sec_fetch_mode: event.sec_fetch_mode,
        sec_fetch_dest: event.sec_fetch_dest,
        sec_fetch_user: event.sec_fetch_user,
        cookie_sent: event.cookie_sent,
        header_order: Some(event.header_order),
        kind: event
            .kind
            .unwrap_or(super::Kind::Other)
            .as_str()
            .to_string(),
        token: event.token.map(|t| t.as_bytes().to_vec()),
        robots_sha256: event.robots_sha256.map(|h| h.to_vec()),
    };
    let value = chain_next(&head.prev, &c);
    let header_set = header_sets.id_for(tx, c.header_values(), c.ts_ms)?;
    insert.execute(params![
        c.id,
        c.ts_ms,
        ip,
        nonce.as_ref().map(|n| &n[..]),
        c.ip_commit,
        c.client_key,
        c.method,
        c.host,
        c.path,
        c.query,
        c.status,
        c.bytes,
        c.duration_us,
        c.referer,
        c.cookie_sent,
        c.kind,
        c.token,
        c.robots_sha256,
        &value[..],
        header_set,
    ])?;
    head.prev = value;
    head.next_id += 1;
    for mint in &event.mints {
        insert_token(tx, mint, Some(id))?;
    }
    if let Some(mint) = &event.ensure_token {
        insert_token(tx, mint, None)?;
    }
    if let (Some(h), Some(token)) = (event.hashes, event.token) {
        tx.prepare_cached(
            "UPDATE tokens SET hash_scheme = ?1, phash = ?2, dhash = ?3, center_phash = ?4
             WHERE token = ?5 AND phash IS NULL",
        )?
        .execute(params![
            h.scheme_id,
            h.hashes.phash as i64,
            h.hashes.dhash as i64,
            h.hashes.center_phash as i64,
            token.as_bytes()
        ])?;
    }
    if let Some(seen) = seen {
        let kind = event.kind.unwrap_or(super::Kind::Other);
        seen.push(seen_of(tx, c, kind, ip, event.robots_sha256)?);
    }
    Ok(id)
}

/// Events of one batch for the detector, in pieces of `FEED_CHUNK`: a whole batch in one
/// vector would be a large allocation, returned to the system and faulted in again each batch.
#[derive(Default)]
struct Fed(Vec<Vec<Seen>>);

/// Events per piece handed to the detector.
pub const FEED_CHUNK: usize = 128;

impl Fed {
    fn push(&mut self, s: Seen) {
        match self.0.last_mut() {
            Some(chunk) if chunk.len() < FEED_CHUNK => chunk.push(s),
            _ => {
                let mut chunk = Vec::with_capacity(FEED_CHUNK);
                chunk.push(s);
                self.0.push(chunk);
            }
        }
    }
}

/// The event just written as the detector reads it back (`detect::seen::read_after`): the same
/// fields, the same owner of its token.
fn seen_of(
    tx: &Transaction,
    c: Chained,
    kind: super::Kind,
    ip: Option<String>,
    robots_sha256: Option<[u8; 32]>,
) -> rusqlite::Result<Seen> {
    let (token_owner, token_depth) = match &c.token {
        Some(token) => tx
            .prepare_cached("SELECT client_key, depth FROM tokens WHERE token = ?1")?
            .query_row([token], |r| {
                Ok((Some(r.get::<_, String>(0)?), Some(depth_of(r.get(1)?))))
            })
            .optional()?
            .unwrap_or((None, None)),
        None => (None, None),
    };
    let sec_fetch =
        c.sec_fetch_site.is_some() || c.sec_fetch_mode.is_some() || c.sec_fetch_dest.is_some();
    Ok(Seen {
        id: c.id,
        ts_ms: c.ts_ms,
        ip,
        client_key: c.client_key,
        kind: Some(kind),
        path: c.path,
        query: c.query,
        status: status_of(c.status),
        user_agent: c.user_agent,
        accept: c.accept,
        accept_language: c.accept_language.is_some(),
        sec_fetch,
        referer: c.referer.is_some(),
        cookie: c.cookie_sent,
        header_order: c.header_order.unwrap_or_default(),
        robots_sha256,
        token_owner,
        token_depth,
    })
}

fn insert_token(tx: &Transaction, m: &Mint, minting_event: Option<i64>) -> rusqlite::Result<()> {
    tokens::insert_if_new(
        tx,
        &tokens::NewToken {
            token: m.token,
            identity_seed: m.identity_seed,
            variant_seed: m.variant_seed,
            size: m.size,
            renderer: m.renderer,
            created_ms: m.created_ms,
            client_key: &m.client_key,
            minted_by: "edge",
            minting_event,
            hashes: None,
            parent_token: m.parent,
            depth: m.depth,
        },
    )
    .map_err(store_to_sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::Token;
    use crate::record::chain::verify;
    use crate::record::{Event, Kind, Recorder};

    fn config() -> RecordConfig {
        RecordConfig {
            synchronous: crate::config::Synchronous::Normal,
            ..RecordConfig::default()
        }
    }

    /// An event `ts` ms after a recent base time (0 = now).
    fn event(ip: &str, path: &str, kind: Kind, ts: i64) -> Event {
        Event {
            ts_ms: if ts > 1_000_000_000 {
                ts
            } else {
                now_ms() + ts
            },
            ip: Some(ip.parse().unwrap()),
            client_key: format!("c:{ip}"),
            method: "GET".into(),
            path: path.into(),
            status: 200,
            kind: Some(kind),
            ..Event::default()
        }
    }

    fn started(dir: &Path, config: &RecordConfig) -> (Recorder, WriterHandle) {
        start(dir, config, [9; 32], Arc::new(Metrics::default())).unwrap()
    }

    fn stop(r: Recorder, w: WriterHandle) {
        r.flush_blocking().unwrap();
        drop(r);
        w.join();
    }

    fn conn(dir: &Path) -> Connection {
        Store::open(dir).unwrap().into_conn()
    }

    /// The first column of every row `sql` selects.
    fn column<T: rusqlite::types::FromSql>(c: &Connection, sql: &str) -> Vec<T> {
        c.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_feed_hands_the_detector_what_it_would_read_back_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, writer) = started(dir.path(), &config());
        let before = event("192.0.2.7", "/before-the-feed", Kind::Page, 0);
        rec.record_blocking(before).unwrap();
        rec.flush_blocking().unwrap();
        let (feed, fed) = std::sync::mpsc::sync_channel(16);
        assert!(rec.try_send(Record::Feed(feed)));

        // A page view minting a token, then fetches of its canary and of a trap by another
        // client, robots.txt, a query, headers present and absent, an event with no address.
        let token = Token::random();
        let mut page = event("192.0.2.7", "/gallery", Kind::Page, 1);
        page.user_agent = Some("Mozilla/5.0".into());
        page.accept_language = Some("fr".into());
        page.sec_fetch_mode = Some("navigate".into());
        page.referer = Some("https://example.org/".into());
        page.cookie_sent = true;
        page.header_order = "host,user-agent,accept".into();
        page.mints = vec![Mint {
            token,
            identity_seed: 7,
            variant_seed: 8,
            size: 256,
            renderer: 1,
            created_ms: now_ms(),
            client_key: "c:192.0.2.7".into(),
            parent: None,
            depth: 2,
        }];
        let mut canary = event("203.0.113.9", "/_fp/c/x.jpg", Kind::Canary, 2);
        canary.token = Some(token);
        canary.accept = Some("image/*".into());
        let mut trap = event("203.0.113.9", "/_fp/g/unknown", Kind::Trap, 3);
        trap.token = Some(Token::random());
        let mut robots = event("203.0.113.9", "/robots.txt", Kind::Robots, 4);
        robots.robots_sha256 = Some([3; 32]);
        let mut query = event("203.0.113.9", "/search", Kind::Other, 5);
        query.query = Some("q=faces".into());
        query.status = 404;
        let mut nameless = event("203.0.113.9", "/x.css", Kind::Asset, 6);
        nameless.ip = None;
        nameless.kind = None;
        for e in [page, canary, trap, robots, query, nameless] {
            rec.record_blocking(e).unwrap();
        }
        rec.flush_blocking().unwrap();

        let got: Vec<Seen> = fed.try_iter().flatten().collect();
        let stored = crate::detect::seen::read_after(&conn(dir.path()), 1, 100).unwrap();
        assert_eq!(stored.len(), 6);
        assert_eq!(got, stored);
        // The owner of the canary's token came through; an unknown token has none.
        assert_eq!(got[1].token_owner.as_deref(), Some("c:192.0.2.7"));
        assert_eq!(got[1].token_depth, Some(2));
        assert_eq!(got[2].token_owner, None);

        // A batch larger than a piece comes in pieces, every event once, in order.
        for i in 0..(FEED_CHUNK * 2 + 44) {
            rec.record_blocking(event("192.0.2.8", &format!("/p{i}"), Kind::Page, 10))
                .unwrap();
        }
        rec.flush_blocking().unwrap();
        let pieces: Vec<Vec<Seen>> = fed.try_iter().collect();
        assert!(pieces.len() >= 3, "{}", pieces.len());
        assert!(pieces
            .iter()
            .all(|p| !p.is_empty() && p.len() <= FEED_CHUNK));
        let ids: Vec<i64> = pieces.iter().flatten().map(|s| s.id).collect();
        assert_eq!(ids, (8..8 + FEED_CHUNK as i64 * 2 + 44).collect::<Vec<_>>());
        stop(rec, writer);
    }

    #[test]
    fn only_evidence_and_awaited_records_cut_a_batch_short() {
        let boxed = |kind| Box::new(event("192.0.2.1", "/x", kind, 0));
        for kind in [Kind::Page, Kind::Asset, Kind::Image, Kind::Other] {
            assert!(!urgent(&Record::Event(boxed(kind), None)), "{kind:?}");
            let (ack, _rx) = tokio::sync::oneshot::channel();
            assert!(
                urgent(&Record::Event(boxed(kind), Some(ack))),
                "awaited {kind:?}"
            );
        }
        for kind in [Kind::Canary, Kind::Trap, Kind::Robots] {
            assert!(urgent(&Record::Event(boxed(kind), None)), "{kind:?}");
        }
        let (ack, _rx) = tokio::sync::oneshot::channel();
        assert!(urgent(&Record::Flush(ack)));
        assert!(!urgent(&Record::Tick));
    }

    #[test]
    fn writing_an_event_builds_no_temporary_table_and_evidence_stays_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let c = conn(dir.path());
        // Every opcode of the insert: a temporary b-tree here is built on each event written.
        let ops: Vec<String> = c
            .prepare(&format!("EXPLAIN {INSERT_EVENT}"))
            .unwrap()
            .query_map(
                rusqlite::params_from_iter([rusqlite::types::Null; 20]),
                |r| r.get(1),
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(ops.iter().any(|o| o == "IdxInsert"), "{ops:?}");
        assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{ops:?}");
        let plan_of = |sql: &str| -> String {
            c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let plan = plan_of(
            "SELECT id FROM events WHERE client_key = 'c:1' AND kind = 'canary' ORDER BY ts_ms",
        );
        assert!(plan.contains("events_client_evidence"), "{plan}");
        // Readers of the full events find them through the same indexes, and each set by id.
        let plan = plan_of("SELECT user_agent FROM events_full WHERE token = x'00'");
        assert!(plan.contains("USING INDEX events_token"), "{plan}");
        assert!(plan.contains("h USING INTEGER PRIMARY KEY"), "{plan}");
        let plan = plan_of("SELECT user_agent FROM events_full WHERE id > 5 ORDER BY id LIMIT 9");
        assert!(
            plan.contains("e USING INTEGER PRIMARY KEY (rowid>?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn with_synchronous_full_only_batches_someone_waits_for_are_synced_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let full = RecordConfig {
            synchronous: crate::config::Synchronous::Full,
            ..config()
        };
        let metrics = Arc::new(Metrics::default());
        let (r, w) = start(dir.path(), &full, [9; 32], metrics.clone()).unwrap();
        let synced = || metrics.synced_commits.load(Relaxed);
        // Page events no one waits for: committed, not synced.
        for i in 0..20 {
            r.record(event("192.0.2.7", &format!("/p{i}"), Kind::Page, i));
        }
        // Until `n` events are committed (bounded).
        let written = |n: u64| {
            let began = Instant::now();
            while metrics.events_written.load(Relaxed) < n {
                assert!(
                    began.elapsed() < Duration::from_secs(10),
                    "{n} events not written"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        written(20);
        assert_eq!(synced(), 0, "a batch of only page events was synced");
        // A canary whose body waits on its record: synced.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(r.commit(event("192.0.2.7", "/_fp/c/x.jpg", Kind::Canary, 30)))
            .unwrap();
        assert_eq!(synced(), 1, "the awaited canary's commit was not synced");
        // Evidence no one waits for (a trap fetch) is synced too.
        rt.block_on(r.keep(event("192.0.2.7", "/_fp/g/x", Kind::Trap, 31)))
            .unwrap();
        written(22);
        assert_eq!(synced(), 2, "the trap's batch was not synced");
        // So is the batch a flush closes (shutdown), whatever it holds.
        r.record(event("192.0.2.7", "/p-last", Kind::Page, 32));
        r.flush_blocking().unwrap();
        assert_eq!(synced(), 3, "a flush's batch was not synced");
        stop(r, w);
        // With synchronous = normal nothing is synced at commit.
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (r, w) = start(dir.path(), &config(), [9; 32], metrics.clone()).unwrap();
        rt.block_on(r.commit(event("192.0.2.7", "/_fp/c/y.jpg", Kind::Canary, 1)))
            .unwrap();
        stop(r, w);
        assert_eq!(metrics.events_written.load(Relaxed), 1);
        assert_eq!(metrics.synced_commits.load(Relaxed), 0);
    }

    #[test]
    fn a_long_background_linger_still_commits_everything_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig {
            background_linger_us: 1_000_000,
            ..config()
        };
        let (r, w) = started(dir.path(), &config);
        for i in 0..50 {
            r.record(event("192.0.2.7", &format!("/p{i}"), Kind::Page, i));
        }
        r.flush_blocking().unwrap();
        let n: i64 = conn(dir.path())
            .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
            .unwrap();
        assert_eq!(n, 50);
        stop(r, w);
    }

    #[test]
    fn events_are_chained_and_the_chain_verifies_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = started(dir.path(), &config());
        for i in 0..50 {
            r.record_blocking(event("192.0.2.1", &format!("/p{i}"), Kind::Page, 1))
                .unwrap();
        }
        stop(r, w);
        let (r, w) = started(dir.path(), &config());
        r.record_blocking(event("192.0.2.2", "/after", Kind::Page, 2))
            .unwrap();
        stop(r, w);
        let c = conn(dir.path());
        let v = verify(&c).unwrap().unwrap();
        assert_eq!(v.events, 51);
        let ids: Vec<i64> = column(&c, "SELECT id FROM events ORDER BY id");
        assert_eq!(ids, (1..=51).collect::<Vec<_>>());
    }

    #[test]
    fn tampering_is_found_at_the_event_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = started(dir.path(), &config());
        for i in 0..10 {
            r.record_blocking(event("192.0.2.1", &format!("/p{i}"), Kind::Page, 1))
                .unwrap();
        }
        stop(r, w);
        let c = conn(dir.path());
        c.execute("UPDATE events SET path = '/forged' WHERE id = 7", [])
            .unwrap();
        let b = verify(&c).unwrap().unwrap_err();
        assert_eq!(b.event_id, 7);
        c.execute("UPDATE events SET path = '/p6' WHERE id = 7", [])
            .unwrap();
        assert!(verify(&c).unwrap().is_ok());
        c.execute("UPDATE events SET client_ip = '10.9.9.9' WHERE id = 3", [])
            .unwrap();
        let b = verify(&c).unwrap().unwrap_err();
        assert_eq!(b.event_id, 3);
        assert!(b.reason.contains("commitment"), "{}", b.reason);
        c.execute("UPDATE events SET client_ip = '192.0.2.1' WHERE id = 3", [])
            .unwrap();
        c.execute("DELETE FROM events WHERE id = 5", []).unwrap();
        let b = verify(&c).unwrap().unwrap_err();
        assert_eq!(b.event_id, 6, "{b}");
    }

    #[test]
    fn commit_answers_with_the_id_once_the_row_is_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = started(dir.path(), &config());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut e = event("192.0.2.1", "/_fp/c/x.jpg", Kind::Canary, 5);
        let token = Token::random();
        e.token = Some(token);
        let id = rt.block_on(r.commit(e)).unwrap();
        let reader = conn(dir.path());
        let kind: String = reader
            .query_row(
                "SELECT kind FROM events WHERE id = ?1 AND token = ?2",
                params![id, token.as_bytes()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "canary");
        stop(r, w);
    }

    #[test]
    fn a_full_queue_drops_pages_but_never_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let config = RecordConfig {
            queue_capacity: 16,
            batch_max: 4,
            ..config()
        };
        let metrics = Arc::new(Metrics::default());
        let (r, w) = start(dir.path(), &config, [9; 32], metrics.clone()).unwrap();
        // Another connection holds the write lock: the writer stalls, the queue fills.
        let blocker = conn(dir.path());
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        for i in 0..200 {
            r.record(event("192.0.2.1", &format!("/p{i}"), Kind::Page, 1));
        }
        let dropped = metrics.events_dropped.load(Relaxed);
        assert!(dropped >= 200 - 16 - 4, "dropped {dropped}");
        let waiting: Vec<_> = (0..40)
            .map(|i| {
                let r = r.clone();
                rt.spawn(async move {
                    r.keep(event("192.0.2.9", &format!("/robots{i}"), Kind::Robots, 1))
                        .await
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        blocker.execute_batch("COMMIT").unwrap();
        for h in waiting {
            rt.block_on(h).unwrap().unwrap();
        }
        stop(r, w);
        let c = conn(dir.path());
        let robots: i64 = c
            .query_row(
                "SELECT count(*) FROM events WHERE kind = 'robots'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(robots, 40, "every evidence event was written");
        assert_eq!(
            metrics.events_dropped.load(Relaxed),
            dropped,
            "no evidence dropped"
        );
        assert!(verify(&c).unwrap().is_ok());
    }

    #[test]
    fn old_addresses_become_pseudonyms_and_old_events_go_but_the_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let day = 86_400_000;
        let (r, w) = started(dir.path(), &config());
        // ids 1-3: past retention; 4-5: past the raw-IP window; 6: recent; 7: old but held.
        // Headers: "old" only on deleted events, "shared" on a deleted and a kept one, "held"
        // on the held event.
        for (i, (age_days, agent)) in [
            (200, "old"),
            (200, "shared"),
            (190, "old"),
            (5, "shared"),
            (4, "recent"),
            (0, "recent"),
        ]
        .iter()
        .enumerate()
        {
            let mut e = event(
                &format!("192.0.2.{}", i + 1),
                "/",
                Kind::Page,
                now - age_days * day,
            );
            e.user_agent = Some(agent.to_string());
            r.record_blocking(e).unwrap();
        }
        let fetched = Token::random();
        let mut held = event("198.51.100.7", "/held", Kind::Canary, now - 300 * day);
        held.token = Some(fetched);
        held.user_agent = Some("held".into());
        r.record_blocking(held).unwrap();
        r.record_blocking(event("192.0.2.8", "/", Kind::Page, now))
            .unwrap();
        stop(r, w);
        let mut c = conn(dir.path());
        c.execute(
            "INSERT INTO holds (client_key, reason, since_ms) VALUES ('c:198.51.100.7', 'test', 0)",
            [],
        )
        .unwrap();
        for t in [Token::random(), fetched] {
            c.execute(
                "INSERT INTO tokens (token, identity_seed, variant_seed, size, renderer, created_ms,
                    client_key, minted_by) VALUES (?1, 1, 2, 256, 1, ?2, 'c:x', 'edge')",
                params![t.as_bytes(), now - 200 * day],
            )
            .unwrap();
        }
        let key = privacy::ip_key(&[9; 32]);
        let done = privacy::run(&mut c, &key, &config(), now).unwrap();
        assert_eq!(
            done,
            privacy::Done {
                pseudonymized: 2,
                expired: 3,
                tokens_expired: 1,
                header_sets_expired: 1,
            }
        );
        let agents: Vec<String> = column(
            &c,
            "SELECT coalesce(user_agent, '-') FROM header_sets ORDER BY 1",
        );
        assert_eq!(
            agents,
            ["-", "held", "recent", "shared"],
            "only the deleted events' set goes"
        );
        let left: Vec<Vec<u8>> = column(&c, "SELECT token FROM tokens");
        assert_eq!(
            left,
            vec![fetched.as_bytes().to_vec()],
            "an old token whose image was fetched stays"
        );
        type Row = (i64, Option<String>, Option<Vec<u8>>, Option<String>);
        let rows: Vec<Row> = c
            .prepare("SELECT id, client_ip, ip_nonce, ip_pseudonym FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![4, 5, 6, 7, 8]
        );
        assert_eq!(rows[0].1, None);
        assert_eq!(rows[0].2, None);
        assert_eq!(
            rows[0].3.as_deref(),
            Some(privacy::pseudonym(&key, "192.0.2.4").as_str())
        );
        assert_eq!(
            rows[2].1.as_deref(),
            Some("192.0.2.6"),
            "recent address kept"
        );
        assert_eq!(
            rows[3].1.as_deref(),
            Some("198.51.100.7"),
            "held client's address kept"
        );
        let v = verify(&c).unwrap().unwrap();
        assert_eq!((v.events, v.anchors_used), (5, 1));
        // The writer continues the chain after the gap.
        let (r, w) = started(dir.path(), &config());
        r.record_blocking(event("192.0.2.9", "/", Kind::Page, now))
            .unwrap();
        stop(r, w);
        assert_eq!(verify(&conn(dir.path())).unwrap().unwrap().events, 6);
    }

    /// A running writer that remembered a set the retention job then deleted stores it again
    /// rather than pointing a new event at a set that is gone.
    #[test]
    fn a_set_deleted_by_retention_is_stored_again_when_it_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let now = now_ms();
        let day = 86_400_000;
        let config = RecordConfig {
            purge_interval_secs: 1,
            ..config()
        };
        let (r, w) = started(dir.path(), &config);
        let with_agent = |ts: i64| {
            let mut e = event("192.0.2.1", "/", Kind::Page, ts);
            e.user_agent = Some("returning".into());
            e
        };
        r.record_blocking(with_agent(now - 200 * day)).unwrap();
        r.flush_blocking().unwrap();
        // Once the interval has passed, a tick runs the purge on the writer thread, which
        // deletes the event and its set.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(r.try_send(Record::Tick));
        r.flush_blocking().unwrap();
        let c = conn(dir.path());
        let sets = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM header_sets", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(sets(&c), 0);
        r.record_blocking(with_agent(now)).unwrap();
        stop(r, w);
        assert_eq!(sets(&c), 1);
        let agent: Option<String> = c
            .query_row("SELECT user_agent FROM events_full", [], |r| r.get(0))
            .unwrap();
        assert_eq!(agent.as_deref(), Some("returning"));
        assert_eq!(verify(&c).unwrap().unwrap().events, 1);
    }

    /// The WAL is copied into the database beside the writer, long before the writer's own
    /// threshold, and nothing is left in it once the recorder has stopped.
    #[test]
    fn the_checkpointer_copies_the_wal_into_the_database_and_the_last_close_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("faceprobe.db");
        let wal = dir.path().join("faceprobe.db-wal");
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let (r, w) = started(dir.path(), &config());
        r.flush_blocking().unwrap();
        std::thread::sleep(CHECKPOINT_EVERY * 3);
        let empty = len(&db);
        for i in 0..3000 {
            r.record(event("192.0.2.1", &format!("/page/{i}"), Kind::Page, i));
        }
        r.flush_blocking().unwrap();
        assert!(len(&wal) > 0, "the events went to the WAL first");
        let waited = Instant::now();
        while len(&db) <= empty && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        assert!(
            len(&db) > empty,
            "checkpointed into the database ({} bytes, WAL {} bytes)",
            len(&db),
            len(&wal)
        );
        // What the checkpoints found is published (faceprobe_wal_pages*).
        let m = r.metrics().clone();
        while m.wal_pages_checkpointed.load(Relaxed) == 0
            && waited.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        let (pages, copied) = (
            m.wal_pages.load(Relaxed),
            m.wal_pages_checkpointed.load(Relaxed),
        );
        assert!(
            copied > 0 && copied <= pages && pages as u64 * 4096 <= len(&wal),
            "published {pages} WAL pages, {copied} copied (WAL {} bytes)",
            len(&wal)
        );
        drop(r);
        w.join();
        assert_eq!(
            len(&wal),
            0,
            "the last connection to close checkpoints the rest"
        );
        assert_eq!(verify(&conn(dir.path())).unwrap().unwrap().events, 3000);
    }

    #[test]
    fn repeated_headers_are_stored_once_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = started(dir.path(), &config());
        let browser = |path: &str, dest: &str| {
            let mut e = event("192.0.2.1", path, Kind::Page, 1);
            e.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64)".into());
            e.accept = Some("text/html".into());
            e.accept_language = Some("fr-FR,fr;q=0.9".into());
            e.accept_encoding = Some("gzip, br".into());
            e.sec_fetch_site = Some("same-origin".into());
            e.sec_fetch_mode = Some("navigate".into());
            e.sec_fetch_dest = Some(dest.into());
            e.sec_fetch_user = Some("?1".into());
            e.header_order = "host,user-agent,accept".into();
            e.referer = Some(format!("https://example.org{path}"));
            e
        };
        let sent = vec![
            browser("/a", "document"),
            browser("/b", "document"),
            browser("/c.jpg", "image"),
            event("192.0.2.2", "/bare", Kind::Page, 1),
            browser("/d", "document"),
        ];
        for e in &sent {
            r.record_blocking(e.clone()).unwrap();
        }
        stop(r, w);
        // Written again by a new writer (nothing remembered): the same sets are found.
        let (r, w) = started(dir.path(), &config());
        r.record_blocking(browser("/e.jpg", "image")).unwrap();
        stop(r, w);
        let c = conn(dir.path());
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM header_sets"), 3);
        assert_eq!(
            count("SELECT count(*) FROM events WHERE user_agent IS NOT NULL"),
            0,
            "the values are not stored inline any more"
        );
        let read: Vec<crate::record::event::Chained> = c
            .prepare(&format!(
                "SELECT {} FROM events_full ORDER BY id",
                crate::record::event::CHAINED_COLUMNS
            ))
            .unwrap()
            .query_map([], crate::record::event::Chained::from_row)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read.len(), 6);
        for (e, back) in sent.iter().zip(&read) {
            assert_eq!(back.path, e.path);
            assert_eq!(back.user_agent, e.user_agent);
            assert_eq!(back.accept, e.accept);
            assert_eq!(back.accept_language, e.accept_language);
            assert_eq!(back.accept_encoding, e.accept_encoding);
            assert_eq!(back.sec_fetch_site, e.sec_fetch_site);
            assert_eq!(back.sec_fetch_mode, e.sec_fetch_mode);
            assert_eq!(back.sec_fetch_dest, e.sec_fetch_dest);
            assert_eq!(back.sec_fetch_user, e.sec_fetch_user);
            assert_eq!(back.header_order.as_deref(), Some(e.header_order.as_str()));
            assert_eq!(back.referer, e.referer);
        }
        assert_eq!(read[5].sec_fetch_dest.as_deref(), Some("image"));
        assert_eq!(verify(&c).unwrap().unwrap().events, 6);

        // A changed set breaks the chain at the first event that uses it.
        c.execute(
            "UPDATE header_sets SET user_agent = 'forged' WHERE sec_fetch_dest = 'image'",
            [],
        )
        .unwrap();
        let b = verify(&c).unwrap().unwrap_err();
        assert_eq!(b.event_id, 3, "{b}");
        c.execute("DELETE FROM header_sets WHERE sec_fetch_dest = 'image'", [])
            .unwrap();
        let b = verify(&c).unwrap().unwrap_err();
        assert_eq!(b.event_id, 3);
        assert!(b.reason.contains("missing"), "{b}");
    }

    #[test]
    fn a_failed_write_refuses_the_waiting_canary_and_keeps_the_chain_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (r, w) = started(dir.path(), &config());
        r.record_blocking(event("192.0.2.1", "/", Kind::Page, 1))
            .unwrap();
        r.flush_blocking().unwrap();
        // A trigger stands in for a full disk: every insert fails.
        let c = conn(dir.path());
        c.execute_batch(
            "CREATE TRIGGER fail BEFORE INSERT ON events BEGIN SELECT RAISE(FAIL, 'disk full'); END;",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let refused = rt.block_on(r.commit(event("192.0.2.1", "/_fp/c/x.jpg", Kind::Canary, 2)));
        assert!(matches!(refused, Err(RecordError::Write(_))), "{refused:?}");
        c.execute_batch("DROP TRIGGER fail;").unwrap();
        let id = rt
            .block_on(r.commit(event("192.0.2.1", "/_fp/c/y.jpg", Kind::Canary, 3)))
            .unwrap();
        assert_eq!(id, 2, "the failed event's id was not burnt");
        stop(r, w);
        assert_eq!(verify(&conn(dir.path())).unwrap().unwrap().events, 2);
    }
}
