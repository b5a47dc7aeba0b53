//! The one writer thread: drains the queue in batches, one transaction per batch, extends the
//! hash chain, then answers the requests waiting for their commit (group commit).
//!
//! A failed transaction (disk full, I/O error) is rolled back whole: the chain state goes back
//! to the last committed event, waiting canaries hear the error (and are not served), and the
//! dropped events are counted. The thread ends when every sender is gone and the queue is empty.

use super::event::{chain_next, ip_commitment, Chained, Event, Mint};
use super::{privacy, Record, RecordError};
use crate::config::RecordConfig;
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

/// The running writer; `join` waits for it to drain and stop once all senders are dropped.
pub struct WriterHandle {
    thread: std::thread::JoinHandle<()>,
}

impl WriterHandle {
    pub fn join(self) {
        let _ = self.thread.join();
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
    conn.pragma_update(None, "synchronous", config.synchronous.to_uppercase())?;
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
        .map_err(|e| StoreError::Secret {
            path: data_dir.to_path_buf(),
            message: format!("cannot start the recorder's timer thread: {e}"),
        })?;
    let thread = std::thread::Builder::new()
        .name("faceprobe-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| StoreError::Secret {
            path: data_dir.to_path_buf(),
            message: format!("cannot start the writer thread: {e}"),
        })?;
    Ok((
        super::Recorder {
            tx,
            metrics: metrics.clone(),
        },
        WriterHandle { thread },
    ))
}

type Ack = oneshot::Sender<Result<i64, RecordError>>;

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Record>) {
        // Purge once at start, so a deployment that restarts often still honours the window.
        self.purge_if_due(true);
        let mut batch = Vec::with_capacity(self.config.batch_max);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.config.batch_max {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.metrics.queue_depth.store(rx.len() as i64, Relaxed);
            let tick = self.write_batch(&mut batch);
            if tick {
                self.purge_if_due(false);
            }
        }
        tracing::debug!("recorder drained and stopped");
    }

    /// Writes one batch in one transaction; returns whether a tick was in it.
    fn write_batch(&mut self, batch: &mut Vec<Record>) -> bool {
        let started = Instant::now();
        let before = self.head;
        let mut acks: Vec<(Ack, i64)> = Vec::new();
        let mut flushes = Vec::new();
        let mut events = 0u64;
        let mut tick = false;
        let result =
            (|| -> Result<(), rusqlite::Error> {
                let tx = self
                    .conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                for record in batch.drain(..) {
                    match record {
                        Record::Event(event, ack) => {
                            let id = insert_event(&tx, &mut self.head, &mut self.rng, *event)?;
                            events += 1;
                            if let Some(ack) = ack {
                                acks.push((ack, id));
                            }
                        }
                        Record::Robots {
                            sha256,
                            body,
                            source,
                        } => {
                            tx.prepare_cached(
                            "INSERT OR IGNORE INTO robots (sha256, body, source, first_served_ms)
                             VALUES (?1, ?2, ?3, ?4)",
                        )?
                        .execute(params![&sha256[..], body, source, now_ms()])?;
                        }
                        Record::Identities {
                            client_key,
                            assigned,
                            pool_next,
                            ts_ms,
                        } => {
                            for (slot, seed) in assigned {
                                tokens::assign_identity(&tx, &client_key, seed, slot, ts_ms)
                                    .map_err(store_to_sql)?;
                            }
                            let stored = tokens::meta_u64(&tx, POOL_COUNTER)
                                .map_err(store_to_sql)?
                                .unwrap_or(0);
                            if pool_next > stored {
                                tokens::set_meta(&tx, POOL_COUNTER, &pool_next.to_string())
                                    .map_err(store_to_sql)?;
                            }
                        }
                        Record::Flush(ack) => flushes.push(ack),
                        Record::Tick => tick = true,
                    }
                }
                tx.commit()
            })();
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                self.metrics.events_written.fetch_add(events, Relaxed);
                self.metrics.batch(seconds);
                for (ack, id) in acks {
                    let _ = ack.send(Ok(id));
                }
            }
            Err(e) => {
                self.head = before;
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
                if done.pseudonymized + done.expired > 0 {
                    tracing::info!(
                        pseudonymized = done.pseudonymized,
                        expired = done.expired,
                        "privacy job: raw addresses past record.raw_ip_hours replaced by pseudonyms, \
                         events past record.retention_days deleted"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "privacy job failed; it will run again"),
        }
    }
}

fn store_to_sql(e: StoreError) -> rusqlite::Error {
    match e {
        StoreError::Sql(e) => e,
        other => rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(
            other.to_string(),
        ))),
    }
}

/// Inserts one event at the head of the chain, then the tokens it minted.
fn insert_event(
    tx: &Transaction,
    head: &mut ChainHead,
    rng: &mut rand_chacha::ChaCha20Rng,
    event: Event,
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
        token: event.token.map(|t| t.0.to_vec()),
        robots_sha256: event.robots_sha256.map(|h| h.to_vec()),
    };
    let value = chain_next(&head.prev, &c);
    tx.prepare_cached(
        "INSERT INTO events (id, ts_ms, client_ip, ip_nonce, ip_commit, client_key, method, host,
            path, query, status, bytes, duration_us, user_agent, referer, accept, accept_language,
            accept_encoding, sec_fetch_site, sec_fetch_mode, sec_fetch_dest, sec_fetch_user,
            cookie_sent, header_order, kind, token, robots_sha256, chain)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
    )?
    .execute(params![
        c.id,
        c.ts_ms,
        ip,
        nonce.map(|n| n.to_vec()),
        c.ip_commit,
        c.client_key,
        c.method,
        c.host,
        c.path,
        c.query,
        c.status,
        c.bytes,
        c.duration_us,
        c.user_agent,
        c.referer,
        c.accept,
        c.accept_language,
        c.accept_encoding,
        c.sec_fetch_site,
        c.sec_fetch_mode,
        c.sec_fetch_dest,
        c.sec_fetch_user,
        c.cookie_sent,
        c.header_order,
        c.kind,
        c.token,
        c.robots_sha256,
        &value[..],
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
            &token.0[..]
        ])?;
    }
    Ok(id)
}

fn insert_token(tx: &Transaction, m: &Mint, minting_event: Option<i64>) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO tokens (token, identity_seed, variant_seed, size, renderer,
            created_ms, client_key, minted_by, minting_event, parent_token, depth)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'edge', ?8, ?9, ?10)",
    )?
    .execute(params![
        &m.token.0[..],
        m.identity_seed as i64,
        m.variant_seed as i64,
        m.size,
        m.renderer,
        m.created_ms,
        m.client_key,
        minting_event,
        m.parent.map(|t| t.0.to_vec()),
        m.depth,
    ])?;
    Ok(())
}
