//! Counters the edge and the recorder keep, rendered as Prometheus text for `/metrics`.
//!
//! Plain atomics: the request path only ever adds. Nothing here blocks or allocates on the
//! hot path; rendering happens on the admin listener.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Upper bounds (seconds) of the writer batch latency histogram.
const BATCH_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The kinds requests are counted by, in the order of `record::Kind` (whose test keeps the
/// two in step): counters by index, so the counters need nothing of the recorder.
pub const REQUEST_KINDS: [&str; 7] = [
    "page", "image", "asset", "robots", "canary", "trap", "other",
];

#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; REQUEST_KINDS.len()],
    pub canaries_served: AtomicU64,
    pub canaries_rendered_ahead: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub rejected_requests: AtomicU64,
    pub connections_open: AtomicI64,
    /// Connections closed at accept: their address held `max_connections_per_address`.
    pub connections_refused: AtomicU64,
    /// Connections closed because an answer waited `send_timeout_secs` for the client.
    pub connections_send_timeout: AtomicU64,
    pub events_written: AtomicU64,
    pub events_dropped: AtomicU64,
    pub write_errors: AtomicU64,
    /// Writer commits synced to the disk at commit (see `record.synchronous`).
    pub synced_commits: AtomicU64,
    pub queue_depth: AtomicI64,
    /// Pages in the store's write-ahead log, and how many of them are copied into the
    /// database, at the checkpointer's last checkpoint.
    pub wal_pages: AtomicI64,
    pub wal_pages_checkpointed: AtomicI64,
    pub queue_capacity: AtomicU64,
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len()],
    batch_count: AtomicU64,
    batch_micros: AtomicU64,
    pub log_lines_suppressed: AtomicU64,
    pub ips_pseudonymized: AtomicU64,
    pub events_expired: AtomicU64,
    pub detect_events: AtomicU64,
    pub detect_clients: AtomicI64,
    pub detect_evictions: AtomicU64,
    pub detect_errors: AtomicU64,
    /// Keys (clients and clusters) that reached watch, suspect, harvester.
    pub flags_raised: [AtomicU64; 3],
    pub alerts_sent: AtomicU64,
    pub alerts_failed: AtomicU64,
    pub alerts_dropped: AtomicU64,
    /// 1 while the fleet store takes what is shipped, 0 while it is away, -1 with no fleet.
    pub fleet_up: AtomicI64,
    pub fleet_events_shipped: AtomicU64,
    pub fleet_rows_shipped: AtomicU64,
    pub fleet_errors: AtomicU64,
    /// Events committed locally and not yet shipped.
    pub fleet_backlog: AtomicI64,
}

impl Metrics {
    /// Counts a request of `REQUEST_KINDS[kind]`.
    pub fn request(&self, kind: usize) {
        if let Some(counter) = self.requests.get(kind) {
            counter.fetch_add(1, Relaxed);
        }
    }

    pub fn requests(&self, kind: usize) -> u64 {
        self.requests.get(kind).map_or(0, |c| c.load(Relaxed))
    }

    pub fn batch(&self, seconds: f64) {
        for (i, le) in BATCH_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.batch_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.batch_count.fetch_add(1, Relaxed);
        self.batch_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "faceprobe_canaries_served_total",
            "Canary images sent after their fetch was committed.",
            self.canaries_served.load(Relaxed),
        );
        counter(
            "faceprobe_canaries_rendered_ahead_total",
            "Canaries rendered by the background worker before their first fetch.",
            self.canaries_rendered_ahead.load(Relaxed),
        );
        counter(
            "faceprobe_upstream_errors_total",
            "Requests the upstream could not answer (502/504 sent).",
            self.upstream_errors.load(Relaxed),
        );
        counter(
            "faceprobe_connections_refused_total",
            "Connections closed at accept: their address already held serve.max_connections_per_address.",
            self.connections_refused.load(Relaxed),
        );
        counter(
            "faceprobe_connections_send_timeout_total",
            "Connections closed: an answer waited serve.send_timeout_secs for the client to read.",
            self.connections_send_timeout.load(Relaxed),
        );
        counter(
            "faceprobe_rejected_requests_total",
            "Requests refused for a limit (body too large, bad request).",
            self.rejected_requests.load(Relaxed),
        );
        counter(
            "faceprobe_events_written_total",
            "Events committed to SQLite.",
            self.events_written.load(Relaxed),
        );
        counter(
            "faceprobe_events_dropped_total",
            "Page and asset events dropped because the recorder queue was full, or lost to a failed write.",
            self.events_dropped.load(Relaxed),
        );
        counter(
            "faceprobe_write_errors_total",
            "Writer transactions that failed (disk full, I/O error).",
            self.write_errors.load(Relaxed),
        );
        counter(
            "faceprobe_writer_synced_commits_total",
            "Writer commits synced to the disk as they committed (record.synchronous = full and \
             the batch held evidence, an awaited record or a flush); other commits become durable \
             with the next synced commit or checkpoint.",
            self.synced_commits.load(Relaxed),
        );
        counter(
            "faceprobe_log_lines_suppressed_total",
            "Request log lines suppressed by the per-client and global log rate limits.",
            self.log_lines_suppressed.load(Relaxed),
        );
        counter(
            "faceprobe_ips_pseudonymized_total",
            "Raw client addresses replaced by keyed pseudonyms after record.raw_ip_hours.",
            self.ips_pseudonymized.load(Relaxed),
        );
        counter(
            "faceprobe_events_expired_total",
            "Events deleted after record.retention_days.",
            self.events_expired.load(Relaxed),
        );
        counter(
            "faceprobe_detect_events_total",
            "Committed events the detector has taken into account.",
            self.detect_events.load(Relaxed),
        );
        counter(
            "faceprobe_detect_evictions_total",
            "Clients dropped from the detector's memory (LRU, detect.max_clients).",
            self.detect_evictions.load(Relaxed),
        );
        counter(
            "faceprobe_detect_errors_total",
            "Detector reads or writes of SQLite that failed (retried).",
            self.detect_errors.load(Relaxed),
        );
        counter(
            "faceprobe_alerts_sent_total",
            "Webhook calls delivered.",
            self.alerts_sent.load(Relaxed),
        );
        counter(
            "faceprobe_alerts_failed_total",
            "Webhook calls given up after their retries.",
            self.alerts_failed.load(Relaxed),
        );
        counter(
            "faceprobe_fleet_events_shipped_total",
            "Events shipped to the fleet store.",
            self.fleet_events_shipped.load(Relaxed),
        );
        counter(
            "faceprobe_fleet_rows_shipped_total",
            "Rows of every kind (events, tokens, robots.txt, flags, reviews, checkpoints) shipped to the fleet store.",
            self.fleet_rows_shipped.load(Relaxed),
        );
        counter(
            "faceprobe_fleet_errors_total",
            "Shipping rounds that failed (PostgreSQL away or refusing); each is retried.",
            self.fleet_errors.load(Relaxed),
        );
        counter(
            "faceprobe_alerts_dropped_total",
            "Alerts dropped because the alert queue was full.",
            self.alerts_dropped.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP faceprobe_flags_total Clients and clusters that reached a level.\n# TYPE faceprobe_flags_total counter"
        );
        for (i, level) in ["watch", "suspect", "harvester"].iter().enumerate() {
            let _ = writeln!(
                out,
                "faceprobe_flags_total{{level=\"{level}\"}} {}",
                self.flags_raised[i].load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP faceprobe_requests_total Requests answered, by kind.\n# TYPE faceprobe_requests_total counter"
        );
        for (i, kind) in REQUEST_KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "faceprobe_requests_total{{kind=\"{kind}\"}} {}",
                self.requests(i)
            );
        }
        let mut gauge = |name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "faceprobe_connections_open",
            "Client connections open on the public listener.",
            self.connections_open.load(Relaxed),
        );
        gauge(
            "faceprobe_queue_depth",
            "Events waiting for the writer.",
            self.queue_depth.load(Relaxed).max(0),
        );
        gauge(
            "faceprobe_wal_pages",
            "Pages (4 KiB) in the store's write-ahead log at the last checkpoint.",
            self.wal_pages.load(Relaxed),
        );
        gauge(
            "faceprobe_wal_pages_checkpointed",
            "Pages of the write-ahead log copied into the database at the last checkpoint.",
            self.wal_pages_checkpointed.load(Relaxed),
        );
        gauge(
            "faceprobe_queue_capacity",
            "Events the recorder queue holds at most (record.queue_capacity).",
            self.queue_capacity.load(Relaxed) as i64,
        );
        gauge(
            "faceprobe_fleet_up",
            "1 while the fleet store (PostgreSQL) takes what is shipped, 0 while it is away, -1 with no fleet store.",
            self.fleet_up.load(Relaxed),
        );
        gauge(
            "faceprobe_fleet_backlog_events",
            "Events committed locally and not yet shipped to the fleet store.",
            self.fleet_backlog.load(Relaxed),
        );
        gauge(
            "faceprobe_detect_clients",
            "Clients the detector holds in memory.",
            self.detect_clients.load(Relaxed),
        );
        let name = "faceprobe_writer_batch_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to write and commit one batch of events.\n# TYPE {name} histogram"
        );
        for (i, le) in BATCH_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.batch_buckets[i].load(Relaxed)
            );
        }
        let count = self.batch_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.batch_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.batch(0.0007);
        m.batch(0.3);
        let text = m.render();
        assert!(text.contains("faceprobe_writer_batch_seconds_bucket{le=\"0.0005\"} 0"));
        assert!(text.contains("faceprobe_writer_batch_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("faceprobe_writer_batch_seconds_bucket{le=\"1\"} 2"));
        assert!(text.contains("faceprobe_writer_batch_seconds_count 2"));
    }

    #[test]
    fn requests_are_counted_by_kind() {
        let m = Metrics::default();
        let index = |name| REQUEST_KINDS.iter().position(|k| *k == name).unwrap();
        m.request(index("canary"));
        m.request(index("canary"));
        m.request(index("page"));
        let text = m.render();
        assert!(text.contains("faceprobe_requests_total{kind=\"canary\"} 2"));
        assert!(text.contains("faceprobe_requests_total{kind=\"page\"} 1"));
    }
}
