//! Recorder throughput: how many events per second the writer thread commits to SQLite, and
//! whether a steady 50,000 events/s loses any.
//!
//! cargo run --release --example recorder -- [EVENTS] [RATE] [SECONDS] [full|normal] [LINGER_US]
//!
//! Phase 1 pushes EVENTS (default 500,000) as fast as one producer can, never dropping
//! (blocking sends), and reports committed events/s. Phase 2 offers RATE events/s (default
//! 50,000) for SECONDS (default 10) the way the edge does (try-send, dropped when the queue is
//! full) and reports drops and the deepest queue seen. Events look like real page views: a
//! browser's headers, a path, a query. Peak memory (VmHWM) is printed at the end. LINGER_US
//! overrides `record.background_linger_us` (default: faceprobe's default).

use faceprobe::config::{RecordConfig, Synchronous};
use faceprobe::metrics::Metrics;
use faceprobe::record::{self, Event, Kind};
use faceprobe::store::now_ms;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn event(i: u64) -> Event {
    Event {
        ts_ms: now_ms(),
        ip: Some(std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])),
        client_key: format!("c:{:024x}", i % 5000),
        method: "GET".into(),
        host: Some("www.example.org".into()),
        path: format!("/gallery/{}/photo-{}.html", i % 97, i),
        query: Some("page=2&sort=date".into()),
        status: 200,
        bytes: 18_234,
        duration_us: 740,
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
                .into(),
        ),
        referer: Some("https://www.example.org/gallery/".into()),
        accept: Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".into()),
        accept_language: Some("fr-FR,fr;q=0.9,en;q=0.8".into()),
        accept_encoding: Some("gzip, deflate, br".into()),
        sec_fetch_site: Some("same-origin".into()),
        sec_fetch_mode: Some("navigate".into()),
        sec_fetch_dest: Some("document".into()),
        sec_fetch_user: Some("?1".into()),
        cookie_sent: true,
        header_order: "host,user-agent,accept,accept-language,accept-encoding,referer,cookie".into(),
        kind: Some(if i.is_multiple_of(10) { Kind::Asset } else { Kind::Page }),
        ..Event::default()
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let total: u64 = arg(1).and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let rate: u64 = arg(2).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let seconds: u64 = arg(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let sync = arg(4).unwrap_or_else(|| "full".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let defaults = RecordConfig::default();
    let config = RecordConfig {
        synchronous: match sync.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => panic!("synchronous is full or normal, not {other}"),
        },
        background_linger_us: arg(5)
            .and_then(|a| a.parse().ok())
            .unwrap_or(defaults.background_linger_us),
        ..defaults
    };
    let metrics = Arc::new(Metrics::default());
    let (rec, writer) =
        record::start(dir.path(), &config, [1; 32], metrics.clone()).expect("recorder starts");
    let events: Vec<Event> = (0..total.max(rate * seconds).min(2_000_000))
        .map(event)
        .collect();
    println!(
        "recorder benchmark: synchronous={sync}, queue {} events, batches of up to {}, background linger {} µs",
        config.queue_capacity, config.batch_max, config.background_linger_us
    );

    // The largest the WAL grows while events are written (checkpoints copy it into the database).
    let wal_path = dir.path().join("faceprobe.db-wal");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wal_watch = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut largest = 0u64;
            while !stop.load(Relaxed) {
                let len = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
                largest = largest.max(len);
                std::thread::sleep(Duration::from_millis(20));
            }
            largest
        })
    };

    let t0 = Instant::now();
    for e in events.iter().take(total as usize) {
        rec.record_blocking(e.clone()).expect("recorder running");
    }
    rec.flush_blocking().expect("flush");
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "phase 1 (as fast as possible): {total} events committed in {secs:.2} s = {:.0} events/s",
        total as f64 / secs
    );

    let written_before = metrics.events_written.load(Relaxed);
    let dropped_before = metrics.events_dropped.load(Relaxed);
    let mut deepest = 0i64;
    let start = Instant::now();
    let per_tick = rate / 1000;
    let mut sent = 0u64;
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        tick += 1;
        for _ in 0..per_tick {
            rec.record(events[(sent % events.len() as u64) as usize].clone());
            sent += 1;
        }
        deepest = deepest.max(metrics.queue_depth.load(Relaxed));
        let next = Duration::from_millis(tick);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let offered_secs = start.elapsed().as_secs_f64();
    rec.flush_blocking().expect("flush");
    let written = metrics.events_written.load(Relaxed) - written_before;
    let dropped = metrics.events_dropped.load(Relaxed) - dropped_before;
    println!(
        "phase 2 (offered {:.0} events/s for {offered_secs:.1} s): {written} written, {dropped} dropped, deepest queue {deepest}",
        sent as f64 / offered_secs
    );
    stop.store(true, Relaxed);
    let largest_wal = wal_watch.join().unwrap_or(0);
    drop(rec);
    writer.join();
    println!("largest WAL seen: {:.0} MB", largest_wal as f64 / 1e6);
    let db = dir.path().join("faceprobe.db");
    let wal = std::fs::metadata(dir.path().join("faceprobe.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) + wal;
    println!(
        "WAL left after the recorder stopped: {:.0} MB",
        wal as f64 / 1e6
    );
    println!(
        "database {:.0} MB ({:.0} bytes/event); peak memory (VmHWM) {} MB, of which the {} prepared events ~{} MB",
        size as f64 / 1e6,
        size as f64 / (total + sent) as f64,
        vm_hwm_kb() / 1024,
        events.len(),
        events.len() * 700 / 1_000_000
    );
}
