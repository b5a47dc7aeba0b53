//! The recorder: every request becomes one `Event`, sent through a bounded queue to one
//! writer thread that commits batches to SQLite and extends the hash chain.
//!
//! The request path never waits on SQLite, with two exceptions that are evidence: a canary
//! image waits until its fetch is committed (group commit with whatever else is queued), and
//! robots.txt and trap fetches wait for room in the queue rather than be dropped. Page and
//! asset events are dropped, and counted, when the queue is full. Memory is bounded by the
//! queue capacity times the largest event (every client-supplied field is cut to
//! `event::MAX_FIELD_BYTES`), plus the waiting evidence senders, bounded by the connection limit,
//! plus the writer's memory of recent header sets (`headers`, at most ~4 MiB).

pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod feed;
pub mod headers;
pub mod privacy;
pub mod published;
mod writer;

pub use event::{Event, Kind, Mint};
pub use writer::{start, WriterHandle, FEED_CHUNK};

use crate::metrics::Metrics;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What the writer thread is asked to do.
pub enum Record {
    /// Write an event; the sender, if any, hears its id once committed.
    Event(
        Box<Event>,
        Option<oneshot::Sender<Result<i64, RecordError>>>,
    ),
    /// Store a robots.txt version (once per distinct body).
    Robots {
        sha256: [u8; 32],
        body: Vec<u8>,
        source: &'static str,
    },
    /// Identities given to a client seen for the first time: (pool slot, identity seed).
    Identities {
        client_key: String,
        assigned: Vec<(u64, u64)>,
        pool_next: u64,
        ts_ms: i64,
    },
    /// Answers once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
    /// From now on, hand each committed batch to the detector as it reads events (`Seen`, in
    /// pieces of `FEED_CHUNK`), so that it need not read them back; a piece it has no room for
    /// is skipped, and the detector reads that one from the store.
    Feed(std::sync::mpsc::SyncSender<Vec<feed::Seen>>),
    /// Time to see whether the privacy and retention job is due.
    Tick,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    #[error("the recorder has stopped")]
    Stopped,
    #[error("the event could not be written: {0}")]
    Write(String),
}

/// The sending side of the queue; cheap to clone, one per request handler.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
    /// The writer thread, woken when something it must commit soon is queued.
    writer: std::thread::Thread,
}

impl Recorder {
    /// Publishes the queue depth; wakes the writer once a quarter of the queue waits, so a
    /// burst is written before the queue fills (the writer otherwise sleeps out its linger).
    fn depth_changed(&self) {
        let depth = self.tx.max_capacity() - self.tx.capacity();
        self.metrics.queue_depth.store(depth as i64, Relaxed);
        if depth >= self.tx.max_capacity() / 4 {
            self.writer.unpark();
        }
    }

    /// Queues a page, asset or other event without waiting; dropped (and counted) when the
    /// queue is full. Evidence goes through `keep` or `commit`.
    pub fn record(&self, event: Event) {
        debug_assert!(
            !event.kind().is_evidence(),
            "evidence must not be droppable"
        );
        self.metrics.request(event.kind().counter());
        if self
            .tx
            .try_send(Record::Event(Box::new(event), None))
            .is_err()
        {
            self.metrics.events_dropped.fetch_add(1, Relaxed);
        }
        self.depth_changed();
    }

    /// Queues an event, waiting for room when the queue is full (robots.txt and trap fetches).
    pub async fn keep(&self, event: Event) -> Result<(), RecordError> {
        self.metrics.request(event.kind().counter());
        let sent = self.tx.send(Record::Event(Box::new(event), None)).await;
        self.writer.unpark();
        self.depth_changed();
        sent.map_err(|_| RecordError::Stopped)
    }

    /// Queues an event, waiting for room, and returns once it is committed, with its id.
    pub async fn commit(&self, event: Event) -> Result<i64, RecordError> {
        self.metrics.request(event.kind().counter());
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Record::Event(Box::new(event), Some(ack)))
            .await
            .map_err(|_| RecordError::Stopped)?;
        self.writer.unpark();
        self.depth_changed();
        done.await.map_err(|_| RecordError::Stopped)?
    }

    /// Queues a record that is not an event, waiting for room.
    pub async fn send(&self, record: Record) -> Result<(), RecordError> {
        let sent = self.tx.send(record).await.map_err(|_| RecordError::Stopped);
        self.writer.unpark();
        sent
    }

    /// Queues a record that is not an event if there is room; false when it was dropped.
    pub fn try_send(&self, record: Record) -> bool {
        self.tx.try_send(record).is_ok()
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), RecordError> {
        let (ack, done) = oneshot::channel();
        self.send(Record::Flush(ack)).await?;
        done.await.map_err(|_| RecordError::Stopped)
    }

    /// Blocking form of `flush` for threads outside the runtime (tests, benchmarks).
    pub fn flush_blocking(&self) -> Result<(), RecordError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .blocking_send(Record::Flush(ack))
            .map_err(|_| RecordError::Stopped)?;
        self.writer.unpark();
        done.blocking_recv().map_err(|_| RecordError::Stopped)
    }

    /// Blocking, never-dropping send for threads outside the runtime (benchmarks).
    pub fn record_blocking(&self, event: Event) -> Result<(), RecordError> {
        self.metrics.request(event.kind().counter());
        self.tx
            .blocking_send(Record::Event(Box::new(event), None))
            .map_err(|_| RecordError::Stopped)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
