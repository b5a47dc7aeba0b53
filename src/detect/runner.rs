//! The detector thread: takes committed events from its checkpoint on, feeds the engine, and
//! every `persist_secs` writes what changed (clients, clusters, flag history, holds and the
//! checkpoint, in one transaction), then hands levels reached to the alerts.
//!
//! After a restart it reads back recent and flagged clients and resumes at its checkpoint, so
//! a harvester is neither forgotten nor flagged twice. A failed write is retried at the next
//! persist with nothing lost; reading never blocks the recorder (WAL).
//!
//! Events come from the writer as it commits them (`Record::Feed`: no reading back, about
//! 1.4 µs less per event), and from the store for whatever the feed did not carry; ids tell
//! which, so each event is taken exactly once.

use super::engine::{Change, Engine};
use super::seen::{first_id_since, read_after};
use super::{stored, Client, DetectConfig, Level, Seen};
use crate::metrics::Metrics;
use crate::record::{privacy, Record, Recorder};
use crate::store::{clients, now_ms, tokens, Store, StoreError};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events read per query. 1,000 rather than 10,000: a pass's rows (~500 B each) then reuse the
/// same few hundred KB instead of taking megabytes that the allocator hands back to the
/// system between passes and faults in again (a third of the detector's time went to the
/// kernel); about 4 % more requests per CPU second on the edge benchmark's stylesheet.
pub const READ_BATCH: usize = 1_000;

/// Where the summary of each key that reaches the alert level goes (the webhooks).
pub trait Notifier: Send {
    fn notify(&self, summary: serde_json::Value);
    /// Copies delivery counters into the metrics.
    fn report(&self, _metrics: &Metrics) {}
    /// Delivers what is pending, within a grace period, at shutdown.
    fn finish(self: Box<Self>) {}
}

impl<F: Fn(serde_json::Value) + Send> Notifier for F {
    fn notify(&self, summary: serde_json::Value) {
        self(summary)
    }
}

impl Notifier for super::alert::Alerts {
    fn notify(&self, summary: serde_json::Value) {
        super::alert::Alerts::notify(self, summary)
    }

    fn report(&self, metrics: &Metrics) {
        let s = self.stats();
        metrics.alerts_sent.store(s.sent.load(Relaxed), Relaxed);
        metrics.alerts_failed.store(s.failed.load(Relaxed), Relaxed);
        metrics
            .alerts_dropped
            .store(s.dropped.load(Relaxed), Relaxed);
    }

    fn finish(self: Box<Self>) {
        self.shutdown(Duration::from_secs(5));
    }
}

pub struct Options {
    pub config: DetectConfig,
    /// Raw addresses older than this are written as pseudonyms unless held.
    pub raw_ip_hours: u64,
    pub secret: [u8; 32],
    /// The level from which alerts go out, and where they go.
    pub alert_level: Level,
    pub notify: Option<Box<dyn Notifier>>,
}

/// Pieces of committed events (`record::FEED_CHUNK` each, 16,384 events in all) the writer may
/// hand over before the detector takes them; beyond, the writer skips pieces and the detector
/// reads those from the store.
const FEED_CHUNKS: usize = 16_384 / crate::record::FEED_CHUNK;

/// The running detector; `stop` lets it read what is left, write, and end.
pub struct DetectorHandle {
    stop: mpsc::Sender<()>,
    /// The feed's own sender, to wake the thread when it waits on the feed.
    wake: mpsc::SyncSender<Vec<Seen>>,
    thread: std::thread::JoinHandle<()>,
}

impl DetectorHandle {
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.wake.try_send(Vec::new());
        let _ = self.thread.join();
    }
}

struct Runner {
    conn: Connection,
    engine: Engine,
    metrics: Arc<Metrics>,
    ip_key: [u8; 32],
    raw_ip_hours: u64,
    alert_level: Level,
    notify: Option<Box<dyn Notifier>>,
    /// Writes that failed, kept for the next attempt.
    pending: (Vec<Client>, Vec<Change>),
    verifier: Option<super::verify::Verifier>,
}

/// Opens the detector's connection, restores its state and starts its thread. With a
/// recorder, the writer hands it each batch it commits (no reading back); it reads the store
/// for what the feed did not bring: events from before it started, a batch the feed had no
/// room for, what is left at a stop.
pub fn start(
    data_dir: &Path,
    options: Options,
    metrics: Arc<Metrics>,
    recorder: Option<&Recorder>,
) -> Result<DetectorHandle, StoreError> {
    let poll = Duration::from_millis(options.config.poll_ms);
    let persist_every = Duration::from_secs(options.config.persist_secs);
    let mut runner = Runner::open(data_dir, options, metrics)?;
    let (stop, stopped) = mpsc::channel();
    let (wake, feed) = mpsc::sync_channel(FEED_CHUNKS);
    if let Some(recorder) = recorder {
        // Without room in the queue now, the detector reads everything from the store.
        recorder.try_send(Record::Feed(wake.clone()));
    }
    let thread = std::thread::Builder::new()
        .name("faceprobe-detect".into())
        .spawn(move || runner.run(stopped, feed, poll, persist_every))
        .map_err(|e| StoreError::Thread {
            what: "detector",
            source: e,
        })?;
    Ok(DetectorHandle { stop, wake, thread })
}

/// The engine as it was: allow-list, robots.txt versions, recent and flagged clients, and the
/// checkpoint (on a first start, `replay_secs` of events back).
pub fn restore(conn: &Connection, config: DetectConfig) -> Result<Engine, StoreError> {
    let replay_ms = (config.replay_secs as i64) * 1000;
    let max = config.max_clients;
    let mut engine = Engine::new(config);
    engine.allow(clients::allowed(conn)?);
    let mut stmt = conn.prepare("SELECT sha256, body FROM robots ORDER BY first_served_ms")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    for row in rows {
        let (sha, body) = row?;
        engine.robots.add(
            hex::encode(sha),
            String::from_utf8_lossy(&body).into_owned(),
        );
    }
    drop(stmt);
    for key in clients::keys(conn)? {
        engine.mark_stored(&key);
    }
    let now = now_ms();
    let mut restored = stored::recent(conn, now - replay_ms, max)?;
    // Oldest first, so the LRU keeps the most recent when there are more than it holds.
    restored.reverse();
    for c in restored {
        engine.load(c);
    }
    engine.last_id = match tokens::meta_u64(conn, clients::CHECKPOINT)? {
        Some(id) => id as i64,
        None => first_id_since(conn, now - replay_ms)?.map_or(0, |id| id - 1),
    };
    Ok(engine)
}

impl Runner {
    fn open(
        data_dir: &Path,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Runner, StoreError> {
        let conn = Store::open(data_dir)?.into_conn();
        let config = options.config;
        let verifier = match config.verify_search_engines {
            true => Some(
                super::verify::Verifier::start(config.agents.search_domains.clone()).map_err(
                    |e| StoreError::Thread {
                        what: "DNS check",
                        source: e,
                    },
                )?,
            ),
            false => None,
        };
        Ok(Runner {
            verifier,
            engine: restore(&conn, config)?,
            conn,
            metrics,
            ip_key: privacy::ip_key(&options.secret),
            raw_ip_hours: options.raw_ip_hours,
            alert_level: options.alert_level,
            notify: options.notify,
            pending: (Vec::new(), Vec::new()),
        })
    }

    fn run(
        &mut self,
        stopped: mpsc::Receiver<()>,
        feed: mpsc::Receiver<Vec<Seen>>,
        poll: Duration,
        persist_every: Duration,
    ) {
        let mut last_persist = Instant::now();
        // The store is read at start, after a quiet poll interval and at a stop, until caught up.
        let mut from_store = true;
        // Once asked, it stays asked: a stop that comes while a backlog is read a full batch
        // at a time waits for the catching up, and is never forgotten.
        let mut stopping = false;
        loop {
            stopping = stopping || !matches!(stopped.try_recv(), Err(mpsc::TryRecvError::Empty));
            if from_store || stopping {
                let read = self.logged(Runner::read_store);
                from_store = read == READ_BATCH;
            }
            if stopping && !from_store {
                self.persist();
                if let Some(n) = self.notify.take() {
                    n.report(&self.metrics);
                    n.finish();
                }
                tracing::debug!("detector caught up and stopped");
                return;
            }
            if last_persist.elapsed() >= persist_every {
                self.persist();
                last_persist = Instant::now();
            }
            if from_store {
                continue;
            }
            match feed.recv_timeout(poll) {
                Ok(batch) => {
                    self.logged(|r| r.take(batch));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => from_store = true,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(poll);
                    from_store = true;
                }
            }
        }
    }

    /// Runs one step; a failure is counted, logged and retried at the next.
    fn logged(&mut self, step: impl FnOnce(&mut Runner) -> Result<usize, StoreError>) -> usize {
        step(self).unwrap_or_else(|e| {
            self.metrics.detect_errors.fetch_add(1, Relaxed);
            tracing::error!(error = %e, "detector: reading events failed; retrying");
            0
        })
    }

    /// Reads and takes in the next events from the store; returns how many.
    fn read_store(&mut self) -> Result<usize, StoreError> {
        let batch = read_after(&self.conn, self.engine.last_id, READ_BATCH)?;
        self.observe(&batch)?;
        Ok(batch.len())
    }

    /// Takes in a batch from the writer, after reading from the store what came before it
    /// and did not come through the feed.
    fn take(&mut self, batch: Vec<Seen>) -> Result<usize, StoreError> {
        let Some(first) = batch.first().map(|s| s.id) else {
            return Ok(0);
        };
        while self.engine.last_id < first - 1 {
            if self.read_store()? == 0 {
                break;
            }
        }
        let last = self.engine.last_id;
        let fresh = match batch.iter().position(|s| s.id > last) {
            Some(i) => &batch[i..],
            None => &[],
        };
        self.observe(fresh)?;
        Ok(fresh.len())
    }

    /// Takes in events in id order.
    fn observe(&mut self, batch: &[Seen]) -> Result<(), StoreError> {
        for s in batch {
            if let Some(sha) = s.robots_sha256 {
                let hex = hex::encode(sha);
                if !self.engine.robots.knows(&hex) {
                    let body: Option<Vec<u8>> = self
                        .conn
                        .query_row(
                            "SELECT body FROM robots WHERE sha256 = ?1",
                            [&sha[..]],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(body) = body {
                        self.engine
                            .robots
                            .add(hex, String::from_utf8_lossy(&body).into_owned());
                    }
                }
            }
            if self.engine.needs_load(&s.client_key) {
                if let Some(c) = stored::get(&self.conn, &s.client_key)? {
                    self.engine.load(c);
                }
            }
            self.engine.observe(s);
        }
        if let Some(v) = &self.verifier {
            for (key, ip) in self.engine.take_to_verify() {
                v.ask(key, ip);
            }
            for (key, verdict) in v.answers() {
                self.engine.verdict(&key, &verdict);
            }
        }
        self.metrics
            .detect_events
            .fetch_add(batch.len() as u64, Relaxed);
        self.metrics
            .detect_clients
            .store(self.engine.tracked() as i64, Relaxed);
        self.metrics
            .detect_evictions
            .store(self.engine.evictions, Relaxed);
        Ok(())
    }

    /// Writes what changed, holds what must be held, then alerts.
    fn persist(&mut self) {
        // The allow-list first, so a dismissal made meanwhile is not written over.
        match clients::allowed(&self.conn) {
            Ok(keys) => self.engine.allow(keys),
            Err(e) => tracing::warn!(error = %e, "detector: cannot read the allow-list"),
        }
        let (states, changes) = self.engine.take_changes();
        self.pending.0.extend(states);
        self.pending.1.extend(changes);
        if let Err(e) = self.write() {
            self.metrics.detect_errors.fetch_add(1, Relaxed);
            tracing::error!(
                error = %e,
                clients = self.pending.0.len(),
                "detector: writing flags failed (is the disk full?); kept for the next attempt"
            );
            return;
        }
        let (states, changes) = std::mem::take(&mut self.pending);
        let by_key: std::collections::HashMap<&str, &Client> =
            states.iter().map(|c| (c.key.as_str(), c)).collect();
        for ch in &changes {
            let Some(level) = ch.level else { continue };
            if ch.note.starts_with("merged") {
                continue;
            }
            self.metrics.flags_raised[level as usize].fetch_add(1, Relaxed);
            let crossed = level >= self.alert_level && ch.from.is_none_or(|f| f < self.alert_level);
            if !crossed || ch.dismissed {
                continue;
            }
            tracing::warn!(
                key = %ch.key,
                level = level.as_str(),
                score = ch.score,
                requests = ch.requests,
                "flagged: {}",
                ch.note
            );
            if let (Some(n), Some(c)) = (&self.notify, by_key.get(ch.key.as_str())) {
                n.notify(c.summary());
            }
        }
        if let Some(n) = &self.notify {
            n.report(&self.metrics);
        }
    }

    fn write(&mut self) -> Result<(), StoreError> {
        let now = now_ms();
        let hold_level = self.engine.config().hold_level;
        let ip_before = now - (self.raw_ip_hours as i64) * 3_600_000;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (states, changes) = &mut self.pending;
        for c in states.iter_mut() {
            let held = !c.dismissed && c.level.is_some_and(|l| l >= hold_level);
            if held {
                let why = format!("flagged {}", c.level.map_or("", Level::as_str));
                if c.is_cluster() {
                    for m in &c.members {
                        clients::hold(&tx, m, &why, now)?;
                    }
                } else {
                    clients::hold(&tx, &c.key, &why, now)?;
                }
            } else {
                if c.dismissed {
                    clients::release(&tx, &c.key, &c.members)?;
                }
                // A member of a flagged cluster is held through the cluster.
                if c.last_ms < ip_before && !clients::is_held(&tx, &c.key)? {
                    pseudonymize(&self.ip_key, c);
                }
            }
            stored::upsert(&tx, c, now)?;
        }
        // Reasons are rendered only for the keys whose history grows, not for every state.
        let by_key: std::collections::HashMap<&str, &Client> =
            states.iter().map(|c| (c.key.as_str(), c)).collect();
        for ch in changes.iter() {
            let reasons = by_key
                .get(ch.key.as_str())
                .map(|c| c.summary()["reasons"].take());
            stored::append_history(&tx, ch, reasons.as_ref())?;
        }
        tokens::set_meta(&tx, clients::CHECKPOINT, &self.engine.last_id.to_string())?;
        tx.commit()?;
        Ok(())
    }
}

/// Replaces raw addresses in a state by their keyed pseudonyms (as the privacy job does for
/// events).
pub fn pseudonymize(key: &[u8; 32], c: &mut Client) {
    let p = |a: &mut String| {
        if !a.starts_with("ip:") {
            *a = privacy::pseudonym(key, a);
        }
    };
    if let Some(a) = c.address.as_mut() {
        p(a);
    }
    c.addresses.iter_mut().for_each(p);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RecordConfig;
    use crate::record::{Event, Kind};

    fn write_events(dir: &Path, from: usize, to: usize) {
        let metrics = Arc::new(Metrics::default());
        let (rec, writer) =
            crate::record::start(dir, &RecordConfig::default(), [1; 32], metrics).unwrap();
        for i in from..to {
            rec.record_blocking(Event {
                ts_ms: now_ms() - 1000 + i as i64,
                ip: Some("198.51.100.4".parse().unwrap()),
                client_key: "c:harvester".into(),
                method: "GET".into(),
                path: format!("/_fp/c/t{i}.jpg"),
                status: 200,
                user_agent: Some("python-requests/2.31.0".into()),
                header_order: "host,user-agent,accept-encoding,accept,connection".into(),
                kind: Some(Kind::Canary),
                ..Event::default()
            })
            .unwrap();
        }
        rec.flush_blocking().unwrap();
        drop(rec);
        writer.join();
    }

    fn run_detector(dir: &Path) -> Vec<serde_json::Value> {
        let (tx, rx) = std::sync::mpsc::channel();
        let options = Options {
            config: DetectConfig::default(),
            raw_ip_hours: 72,
            secret: [1; 32],
            alert_level: Level::Harvester,
            notify: Some(Box::new(move |v| {
                let _ = tx.send(v);
            })),
        };
        start(dir, options, Arc::new(Metrics::default()), None)
            .unwrap()
            .stop();
        rx.try_iter().collect()
    }

    fn conn(dir: &Path) -> Connection {
        Store::open(dir).unwrap().into_conn()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_restart_keeps_flags_resumes_at_its_checkpoint_and_never_alerts_twice() {
        let dir = tempfile::tempdir().unwrap();
        write_events(dir.path(), 0, 20);
        let alerts = run_detector(dir.path());
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0]["key"], "c:harvester");
        assert_eq!(alerts[0]["level"], "harvester");
        let conn = conn(dir.path());
        let c = stored::get(&conn, "c:harvester").unwrap().unwrap();
        assert_eq!(c.level, Some(Level::Harvester));
        assert_eq!(c.counts.requests, 20);
        assert_eq!(c.address.as_deref(), Some("198.51.100.4"));
        let history = count(&conn, "SELECT COUNT(*) FROM flag_history");
        assert!(history >= 1);
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM holds WHERE client_key = 'c:harvester'"
            ),
            1
        );

        // Restart with nothing new: no alert, no history, same state.
        assert!(run_detector(dir.path()).is_empty());
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM flag_history"), history);

        // More events after a restart are added to what was there, not counted again.
        write_events(dir.path(), 20, 25);
        assert!(run_detector(dir.path()).is_empty());
        let c = stored::get(&conn, "c:harvester").unwrap().unwrap();
        assert_eq!(c.counts.requests, 25);
        assert_eq!(c.counts.canaries, 25);
    }

    #[test]
    fn a_stop_that_comes_while_a_backlog_is_caught_up_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let backlog = 5 * READ_BATCH;
        write_events(dir.path(), 0, backlog);
        let handle = start(dir.path(), options(50), Arc::new(Metrics::default()), None).unwrap();
        let (done, stopped) = mpsc::channel();
        std::thread::spawn(move || {
            handle.stop();
            let _ = done.send(());
        });
        assert!(
            stopped.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the detector did not stop within a minute of being asked"
        );
        let c = stored::get(&conn(dir.path()), "c:harvester")
            .unwrap()
            .unwrap();
        assert_eq!(
            c.counts.requests, backlog as u64,
            "it caught up before it stopped"
        );
    }

    fn options(poll_ms: u64) -> Options {
        Options {
            config: DetectConfig {
                poll_ms,
                ..DetectConfig::default()
            },
            raw_ip_hours: 72,
            secret: [1; 32],
            alert_level: Level::Harvester,
            notify: None,
        }
    }

    #[test]
    fn a_batch_after_a_gap_is_preceded_by_the_store_and_nothing_is_taken_twice() {
        let dir = tempfile::tempdir().unwrap();
        write_events(dir.path(), 0, 30);
        let mut runner =
            Runner::open(dir.path(), options(200), Arc::new(Metrics::default())).unwrap();
        let batch = |from, n| read_after(&conn(dir.path()), from, n).unwrap();
        // Events 21..=30 come through the feed; 1..=20 never did (a skipped batch): they are
        // read from the store first (with what follows them there).
        runner.take(batch(20, 10)).unwrap();
        assert_eq!(runner.engine.last_id, 30);
        let requests = |r: &Runner| r.engine.get("c:harvester").unwrap().counts.requests;
        assert_eq!(requests(&runner), 30);
        // A batch already read from the store, or partly, is not counted again.
        assert_eq!(runner.take(batch(20, 10)).unwrap(), 0);
        write_events(dir.path(), 30, 35);
        let overlapping = batch(25, 10);
        assert_eq!(overlapping.len(), 10);
        assert_eq!(runner.take(overlapping).unwrap(), 5);
        assert_eq!(requests(&runner), 35);
        assert_eq!(runner.take(Vec::new()).unwrap(), 0);
    }

    #[test]
    fn with_a_recorder_the_detector_takes_events_as_they_are_committed() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (rec, writer) = crate::record::start(
            dir.path(),
            &RecordConfig::default(),
            [1; 32],
            metrics.clone(),
        )
        .unwrap();
        // Polling the store once a minute: within the wait below only the feed brings events.
        let detector = start(dir.path(), options(60_000), metrics.clone(), Some(&rec)).unwrap();
        for i in 0..20 {
            rec.record_blocking(Event {
                ts_ms: now_ms() + i,
                ip: Some("198.51.100.4".parse().unwrap()),
                client_key: "c:harvester".into(),
                method: "GET".into(),
                path: format!("/_fp/c/t{i}.jpg"),
                status: 200,
                kind: Some(Kind::Canary),
                ..Event::default()
            })
            .unwrap();
        }
        rec.flush_blocking().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.detect_events.load(Relaxed) < 20 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(metrics.detect_events.load(Relaxed), 20);
        detector.stop();
        // The writer goes on without its reader.
        for i in 0..3 {
            rec.record_blocking(Event {
                ts_ms: now_ms() + i,
                client_key: "c:after".into(),
                kind: Some(Kind::Page),
                ..Event::default()
            })
            .unwrap();
        }
        rec.flush_blocking().unwrap();
        assert_eq!(metrics.events_written.load(Relaxed), 23);
        drop(rec);
        writer.join();
        let conn = conn(dir.path());
        let c = stored::get(&conn, "c:harvester").unwrap().unwrap();
        assert_eq!(c.counts.requests, 20);
    }

    #[test]
    fn a_dismissed_client_is_released_and_not_flagged_again() {
        let dir = tempfile::tempdir().unwrap();
        write_events(dir.path(), 0, 10);
        assert_eq!(run_detector(dir.path()).len(), 1);
        let mut conn = conn(dir.path());
        assert!(stored::dismiss(&mut conn, "c:harvester", "our own checker", now_ms()).unwrap());
        assert!(!stored::dismiss(&mut conn, "c:nobody", "", now_ms()).unwrap());
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM holds"), 0);
        write_events(dir.path(), 10, 20);
        assert!(run_detector(dir.path()).is_empty());
        let c = stored::get(&conn, "c:harvester").unwrap().unwrap();
        assert!(c.dismissed);
        assert_eq!(c.counts.requests, 20);
        assert_eq!(c.summary()["level"], serde_json::Value::Null);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM holds"), 0);
        let notes: Vec<String> = clients::history(&conn, "c:harvester")
            .unwrap()
            .into_iter()
            .map(|h| h.3)
            .collect();
        assert!(
            notes.iter().any(|n| n.contains("our own checker")),
            "{notes:?}"
        );
    }
}
