//! Alert webhooks: when the detector decides a client or cluster has reached the configured
//! level it calls [`Alerts::notify`], and this module POSTs a signed JSON summary to every
//! configured webhook.
//!
//! It owns delivery only: signing, throttling (a wave of crawlers becomes a digest, not
//! thousands of calls), retries with back-off, and counting what failed. It must never block
//! or slow the detector: `notify` only tries to queue, and a full queue drops and counts.
//! Each webhook has its own thread and queue, so a slow or dead receiver holds up only itself.
//!
//! Receivers verify `X-Faceprobe-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
//! HMAC-SHA256 under the shared secret of `"<t>." + body`; the timestamp is inside the MAC so a
//! receiver can reject replayed calls.

use crate::config::AlertConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The signature header; see the module documentation for its format.
pub const SIGNATURE_HEADER: &str = "X-Faceprobe-Signature";

const USER_AGENT: &str = concat!("faceprobe/", env!("CARGO_PKG_VERSION"));

/// Why alerts could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("invalid [alert] configuration: {0}")]
    Config(String),
    #[error("cannot start the alert thread for {webhook}: {source}")]
    Spawn {
        webhook: String,
        source: std::io::Error,
    },
}

/// What happened to alerts since start; read them for metrics.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Webhook calls delivered (answered 2xx); a digest is one call.
    pub sent: AtomicU64,
    /// Webhook calls given up: a permanent answer (4xx other than 429, 3xx), retries used up,
    /// or the shutdown grace ran out.
    pub failed: AtomicU64,
    /// Retries made.
    pub retried: AtomicU64,
    /// Flags that never went into a call, counted once per webhook: its queue was full, or
    /// they were still waiting when the shutdown grace ran out.
    pub dropped: AtomicU64,
    /// Delivered calls that were digests.
    pub digests: AtomicU64,
}

/// The handle the detector holds. Delivery runs on one thread per webhook.
pub struct Alerts {
    /// One bounded queue per webhook; closing them tells the threads to finish.
    queues: Vec<SyncSender<Arc<Value>>>,
    stats: Arc<AlertStats>,
    /// Set by `shutdown` before the queues close: when the threads must stop trying.
    deadline: Arc<OnceLock<Instant>>,
    /// Every thread holds a sender and never sends; disconnection means all have returned.
    finished: Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Alerts {
    /// Validates `config` and starts one delivery thread per webhook; with no webhooks, a
    /// handle whose `notify` does nothing.
    pub fn start(config: &AlertConfig) -> Result<Alerts, AlertError> {
        let problems = config.problems();
        if !problems.is_empty() {
            let listed: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            return Err(AlertError::Config(listed.join("; ")));
        }
        let stats = Arc::new(AlertStats::default());
        let deadline = Arc::new(OnceLock::new());
        let (done, finished) = mpsc::channel();
        let mut alerts = Alerts {
            queues: Vec::new(),
            stats: stats.clone(),
            deadline: deadline.clone(),
            finished,
            threads: Vec::new(),
        };
        for (i, url) in config.webhooks.iter().map(|u| u.as_str()).enumerate() {
            let (queue, receiver) = mpsc::sync_channel(config.queue);
            let worker = Worker::new(
                url,
                config,
                receiver,
                stats.clone(),
                deadline.clone(),
                done.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("alert-{i}"))
                .spawn(move || worker.run())
                .map_err(|source| AlertError::Spawn {
                    webhook: shown(url),
                    source,
                })?;
            alerts.queues.push(queue);
            alerts.threads.push(thread);
        }
        Ok(alerts)
    }

    /// Queues `summary` for every webhook. Never blocks: when a webhook's queue is full the
    /// alert is dropped for it and counted.
    pub fn notify(&self, summary: Value) {
        if self.queues.is_empty() {
            return;
        }
        let flag = Arc::new(summary);
        for queue in &self.queues {
            if queue.try_send(flag.clone()).is_err() {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn stats(&self) -> &AlertStats {
        &self.stats
    }

    /// Delivers what is pending, ignoring the rate limit, for at most `grace`; then returns.
    /// A thread still inside a call is left to finish it; what it could not deliver is
    /// counted in `dropped` or `failed`. Dropping `Alerts` instead abandons pending alerts.
    pub fn shutdown(self, grace: Duration) {
        let Alerts {
            queues,
            deadline,
            finished,
            threads,
            ..
        } = self;
        let _ = deadline.set(Instant::now() + grace);
        drop(queues);
        match finished.recv_timeout(grace) {
            Err(RecvTimeoutError::Disconnected) => {
                for thread in threads {
                    let _ = thread.join();
                }
            }
            _ => tracing::warn!("alert webhooks still busy after the {grace:?} shutdown grace"),
        }
    }
}

/// The JSON body of one call.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Payload<'a> {
    Flag {
        sent_ms: u64,
        flag: &'a Value,
    },
    Digest {
        sent_ms: u64,
        flags: Vec<&'a Value>,
        more: u64,
    },
}

/// How one call ended.
enum Answer {
    Delivered,
    /// Not worth retrying: the receiver refused this call.
    Refused(String),
    /// Worth retrying, after the receiver's `Retry-After` when it gave one.
    Failed {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// Delivers to one webhook: gathers flags from its queue, waits for a permit, calls.
struct Worker {
    url: String,
    /// The URL as logged: no credentials, query or fragment.
    shown: String,
    agent: ureq::Agent,
    secret: Vec<u8>,
    limiter: DefaultDirectRateLimiter,
    clock: DefaultClock,
    queue: Receiver<Arc<Value>>,
    /// Flags waiting for the next call, oldest first, at most `digest_max`.
    gathered: Vec<Arc<Value>>,
    /// Flags waiting beyond `digest_max`, only counted.
    more: u64,
    digest_max: usize,
    /// Most alerts taken from the queue in one sweep, so a flood cannot starve the calls.
    sweep_max: usize,
    retries: u32,
    backoff_initial: Duration,
    backoff_max: Duration,
    timeout: Duration,
    stats: Arc<AlertStats>,
    shutdown_deadline: Arc<OnceLock<Instant>>,
    /// Once the queue has closed: when to stop trying.
    closing: Option<Instant>,
    /// Dropped when the worker returns; `shutdown` waits for that.
    _done: mpsc::Sender<()>,
}

impl Worker {
    fn new(
        url: &str,
        config: &AlertConfig,
        queue: Receiver<Arc<Value>>,
        stats: Arc<AlertStats>,
        shutdown_deadline: Arc<OnceLock<Instant>>,
        done: mpsc::Sender<()>,
    ) -> Worker {
        // `validate` has checked per_minute > 0.
        let per_minute = NonZeroU32::new(config.per_minute).unwrap_or(NonZeroU32::MIN);
        // The TLS config of the `rustls` feature: ring, and the Mozilla roots built into the
        // binary (webpki-roots), not the system store. Redirects are not followed: a signed
        // alert goes only to the URL the operator configured.
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(USER_AGENT)
                .build(),
        );
        Worker {
            url: url.to_string(),
            shown: shown(url),
            agent,
            secret: config.secret.as_bytes().to_vec(),
            limiter: RateLimiter::direct(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
            queue,
            gathered: Vec::new(),
            more: 0,
            digest_max: config.digest_max,
            sweep_max: config.queue,
            retries: config.retries,
            backoff_initial: Duration::from_millis(config.backoff_initial_ms),
            backoff_max: Duration::from_millis(config.backoff_max_ms),
            timeout: Duration::from_secs(config.timeout_secs),
            stats,
            shutdown_deadline,
            closing: None,
            _done: done,
        }
    }

    fn run(mut self) {
        loop {
            if self.gathered.is_empty() {
                match self.queue.recv() {
                    Ok(flag) => self.gather(flag),
                    Err(_) => return,
                }
            }
            self.wait_for_permit();
            if self
                .closing
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                self.abandon();
                return;
            }
            self.send_gathered();
        }
    }

    fn gather(&mut self, flag: Arc<Value>) {
        if self.gathered.len() < self.digest_max {
            self.gathered.push(flag);
        } else {
            self.more += 1;
        }
    }

    /// Gathers what is queued now, without waiting.
    fn sweep(&mut self) {
        for _ in 0..self.sweep_max {
            match self.queue.try_recv() {
                Ok(flag) => self.gather(flag),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => return self.close(),
            }
        }
    }

    /// Keeps gathering until `until`; once closing, only waits (never past the deadline).
    fn gather_until(&mut self, until: Instant) {
        loop {
            if let Some(deadline) = self.closing {
                std::thread::sleep(
                    until
                        .min(deadline)
                        .saturating_duration_since(Instant::now()),
                );
                return;
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            match self.queue.recv_timeout(left) {
                Ok(flag) => self.gather(flag),
                Err(RecvTimeoutError::Timeout) => return,
                // Shutdown began: stop waiting now, so that what is gathered goes out in the
                // last call (a wait for a permit would otherwise sleep out the whole grace).
                Err(RecvTimeoutError::Disconnected) => return self.close(),
            }
        }
    }

    fn close(&mut self) {
        if self.closing.is_none() {
            // Unset when `Alerts` was dropped without `shutdown`: no grace.
            let deadline = self.shutdown_deadline.get().copied();
            self.closing = Some(deadline.unwrap_or_else(Instant::now));
        }
    }

    /// Waits until the limiter allows a call, gathering meanwhile. Closing skips the limit:
    /// what is pending goes out in one last call.
    fn wait_for_permit(&mut self) {
        loop {
            self.sweep();
            if self.closing.is_some() {
                return;
            }
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    self.gather_until(Instant::now() + wait);
                }
            }
        }
    }

    /// Counts what was never sent because the shutdown grace ran out.
    fn abandon(&mut self) {
        let lost = self.gathered.len() as u64 + self.more;
        if lost > 0 {
            self.stats.dropped.fetch_add(lost, Relaxed);
            tracing::warn!(
                webhook = %self.shown,
                "{lost} alerts not delivered: the shutdown grace ran out"
            );
        }
        self.gathered.clear();
        self.more = 0;
    }

    /// Sends everything gathered as one call: a flag alone, or a digest.
    fn send_gathered(&mut self) {
        let flags = std::mem::take(&mut self.gathered);
        let more = std::mem::take(&mut self.more);
        let sent_ms = unix_millis();
        let digest = flags.len() > 1 || more > 0;
        let payload = match flags.first() {
            Some(flag) if !digest => Payload::Flag { sent_ms, flag },
            _ => Payload::Digest {
                sent_ms,
                flags: flags.iter().map(|f| f.as_ref()).collect(),
                more,
            },
        };
        match serde_json::to_vec(&payload) {
            Ok(body) => self.deliver(&body, digest),
            Err(e) => {
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::warn!(webhook = %self.shown, error = %e, "alert not serializable");
            }
        }
    }

    /// One call with its retries.
    fn deliver(&mut self, body: &[u8], digest: bool) {
        let mut retry = 0;
        loop {
            let reason = match self.post(body) {
                Answer::Delivered => {
                    self.stats.sent.fetch_add(1, Relaxed);
                    if digest {
                        self.stats.digests.fetch_add(1, Relaxed);
                    }
                    return;
                }
                Answer::Refused(reason) => {
                    self.give_up(retry + 1, &reason);
                    return;
                }
                Answer::Failed {
                    reason,
                    retry_after,
                } => {
                    if retry >= self.retries {
                        self.give_up(retry + 1, &reason);
                        return;
                    }
                    let wait = match retry_after {
                        Some(after) => after.min(self.backoff_max),
                        None => self.backoff(retry),
                    };
                    tracing::debug!(webhook = %self.shown, "alert call failed ({reason}), retry in {wait:?}");
                    retry += 1;
                    self.stats.retried.fetch_add(1, Relaxed);
                    self.gather_until(Instant::now() + wait);
                    reason
                }
            };
            if self
                .closing
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                self.give_up(retry, &format!("{reason}; then the shutdown grace ran out"));
                return;
            }
        }
    }

    fn give_up(&self, attempts: u32, reason: &str) {
        self.stats.failed.fetch_add(1, Relaxed);
        tracing::warn!(
            webhook = %self.shown,
            attempts,
            "alert not delivered: {reason}"
        );
    }

    /// Doubling from the initial wait, capped, then jittered into its upper half so that
    /// many probes retrying against one receiver spread out.
    fn backoff(&self, retry: u32) -> Duration {
        let doubled = self
            .backoff_initial
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX));
        let capped = doubled.min(self.backoff_max);
        let half = capped / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    fn post(&self, body: &[u8]) -> Answer {
        let mut timeout = self.timeout;
        if let Some(deadline) = self.closing {
            timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
        }
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let signature = format!("t={t},v1={}", sign(&self.secret, t, body));
        let result = self
            .agent
            .post(&self.url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .send(body);
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                return Answer::Failed {
                    reason: e.to_string(),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            return Answer::Delivered;
        }
        let reason = format!("the webhook answered {status}");
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Answer::Failed {
                reason,
                retry_after,
            }
        } else {
            Answer::Refused(reason)
        }
    }
}

/// Hex HMAC-SHA256 under `secret` of `"<t>." + body`.
fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length; the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn unix_millis() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// `url` fit for a log line: scheme, host, port and path, without credentials, query or
/// fragment.
fn shown(url: &str) -> String {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return "(not a URL)".to_string();
    };
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return "(not a URL)".to_string();
    };
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{scheme}://{host}{port}{}", uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::{Condvar, Mutex};

    const SECRET: &str = "test-secret";

    /// How the test receiver answers one request.
    #[derive(Clone, Copy)]
    enum Reply {
        Status(u16),
        /// 429 with `Retry-After: <seconds>`.
        TooMany(u64),
        /// Never answers (the connection stays open).
        Hang,
    }

    #[derive(Clone)]
    struct Received {
        headers: http::HeaderMap,
        body: Vec<u8>,
    }

    impl Received {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("the body is JSON")
        }

        fn header(&self, name: &str) -> String {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        }

        /// Flags this call stands for: listed ones plus `more`.
        fn flag_count(&self) -> u64 {
            let v = self.json();
            match v["type"].as_str() {
                Some("flag") => 1,
                Some("digest") => {
                    v["flags"].as_array().map_or(0, |a| a.len() as u64)
                        + v["more"].as_u64().unwrap_or(0)
                }
                other => panic!("unknown type {other:?}"),
            }
        }
    }

    #[derive(Default)]
    struct Log {
        received: Vec<Received>,
        script: VecDeque<Reply>,
    }

    /// A local webhook on 127.0.0.1 (a small hyper server) that records every request and
    /// answers from a script, then with `otherwise`.
    struct WebhookReceiver {
        url: String,
        log: Arc<(Mutex<Log>, Condvar)>,
    }

    impl WebhookReceiver {
        fn start(script: &[Reply], otherwise: Reply) -> WebhookReceiver {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
            listener.set_nonblocking(true).expect("nonblocking");
            let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
            let log = Arc::new((
                Mutex::new(Log {
                    received: Vec::new(),
                    script: script.iter().copied().collect(),
                }),
                Condvar::new(),
            ));
            let shared = log.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(serve(listener, shared, otherwise));
            });
            WebhookReceiver { url, log }
        }

        /// Waits until `done` holds for the requests received so far, and returns them.
        fn wait_until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
            let (log, changed) = &*self.log;
            let give_up = Instant::now() + Duration::from_secs(60);
            let mut guard = log.lock().expect("log");
            while !done(&guard.received) {
                assert!(Instant::now() < give_up, "gave up waiting for {what}");
                guard = changed
                    .wait_timeout(guard, Duration::from_millis(100))
                    .expect("log")
                    .0;
            }
            guard.received.clone()
        }

        fn wait_for(&self, calls: usize) -> Vec<Received> {
            self.wait_until(&format!("{calls} calls"), |r| r.len() >= calls)
        }

        fn received(&self) -> Vec<Received> {
            self.log.0.lock().expect("log").received.clone()
        }
    }

    async fn serve(
        listener: std::net::TcpListener,
        log: Arc<(Mutex<Log>, Condvar)>,
        otherwise: Reply,
    ) {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            let reply = {
                                let (log, changed) = &*log;
                                let mut guard = log.lock().expect("log");
                                guard.received.push(Received {
                                    headers: parts.headers,
                                    body,
                                });
                                changed.notify_all();
                                guard.script.pop_front().unwrap_or(otherwise)
                            };
                            let mut response =
                                http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                            match reply {
                                Reply::Status(code) => {
                                    *response.status_mut() =
                                        http::StatusCode::from_u16(code).expect("status");
                                }
                                Reply::TooMany(seconds) => {
                                    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                                    response.headers_mut().insert(
                                        http::header::RETRY_AFTER,
                                        http::HeaderValue::from(seconds),
                                    );
                                }
                                Reply::Hang => std::future::pending::<()>().await,
                            }
                            Ok::<_, hyper::Error>(response)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Test settings: tiny back-offs so retries take milliseconds.
    fn config(webhooks: &[&WebhookReceiver]) -> AlertConfig {
        AlertConfig {
            webhooks: webhooks
                .iter()
                .map(|w| crate::config::WebhookUrl::parse(&w.url).expect("a webhook URL"))
                .collect(),
            secret: SECRET.to_string(),
            backoff_initial_ms: 2,
            backoff_max_ms: 10,
            timeout_secs: 5,
            ..AlertConfig::default()
        }
    }

    fn count(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Waits (at most a minute, as a safety net) until `done` holds.
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < give_up, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The receiver's side of the signature check.
    fn signature_valid(received: &Received, secret: &str) -> bool {
        let header = received.header(SIGNATURE_HEADER);
        let Some((t, v1)) = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
        else {
            return false;
        };
        let Ok(expected) = hex::decode(v1) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(&received.body);
        mac.verify_slice(&expected).is_ok()
    }

    #[test]
    fn single_flag_is_signed_with_the_shared_secret() {
        let hook = WebhookReceiver::start(&[], Reply::Status(200));
        let alerts = Alerts::start(&config(&[&hook])).expect("start");
        alerts.notify(json!({"client": "c1", "level": "harvester"}));
        let calls = hook.wait_for(1);
        let call = &calls[0];
        assert!(
            signature_valid(call, SECRET),
            "{}",
            call.header(SIGNATURE_HEADER)
        );
        assert!(!signature_valid(call, "another-secret"));
        let mut tampered = call.clone();
        tampered.body.push(b' ');
        assert!(!signature_valid(&tampered, SECRET));
        let t: u64 = call.header(SIGNATURE_HEADER)[2..]
            .split(',')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("t is unix seconds");
        assert!(t.abs_diff(unix_millis() / 1000) < 3600);

        let body = call.json();
        assert_eq!(body["type"], "flag");
        assert_eq!(body["flag"], json!({"client": "c1", "level": "harvester"}));
        assert!(body["sent_ms"].as_u64().is_some_and(|ms| ms > 0));
        assert_eq!(call.header("content-type"), "application/json");
        assert_eq!(
            call.header("user-agent"),
            format!("faceprobe/{}", env!("CARGO_PKG_VERSION"))
        );
        eventually("sent", || count(&alerts.stats().sent) == 1);
        assert_eq!(count(&alerts.stats().digests), 0);
        alerts.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn burst_without_permits_becomes_one_digest() {
        let hook = WebhookReceiver::start(&[], Reply::Status(200));
        let alerts = Alerts::start(&AlertConfig {
            per_minute: 2,
            digest_max: 10,
            ..config(&[&hook])
        })
        .expect("start");
        // Spend both permits of the minute, one call each.
        alerts.notify(json!({"n": 0}));
        hook.wait_for(1);
        alerts.notify(json!({"n": 1}));
        hook.wait_for(2);
        for n in 2..52 {
            alerts.notify(json!({ "n": n }));
        }
        // No permit for half a minute: the 50 wait together; shutdown sends them at once.
        alerts.shutdown(Duration::from_secs(10));
        let calls = hook.received();
        assert_eq!(calls.len(), 3, "50 flags without a permit make one call");
        let digest = calls[2].json();
        assert_eq!(digest["type"], "digest");
        let listed: Vec<u64> = digest["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .map(|f| f["n"].as_u64().expect("n"))
            .collect();
        assert_eq!(listed, (2..12).collect::<Vec<_>>(), "the oldest are listed");
        assert_eq!(digest["more"], 40);
        assert!(calls.iter().all(|c| signature_valid(c, SECRET)));
    }

    #[test]
    fn digest_goes_out_at_the_next_permit() {
        let hook = WebhookReceiver::start(&[], Reply::Status(200));
        // 60 a minute: the burst is 60 and a permit comes back every second.
        let alerts = Alerts::start(&AlertConfig {
            per_minute: 60,
            ..config(&[&hook])
        })
        .expect("start");
        for n in 0..60 {
            alerts.notify(json!({ "n": n }));
            hook.wait_for(n + 1);
        }
        for n in 60..110 {
            alerts.notify(json!({ "n": n }));
        }
        let calls = hook.wait_until("all 110 flags", |calls| {
            calls.iter().map(Received::flag_count).sum::<u64>() >= 110
        });
        let wave = &calls[60..];
        assert!(
            wave.len() <= 5,
            "a wave of 50 made {} calls, not a handful",
            wave.len()
        );
        assert!(wave.iter().any(|c| c.json()["type"] == "digest"));
        eventually("digest counted", || count(&alerts.stats().digests) >= 1);
        assert_eq!(count(&alerts.stats().dropped), 0);
        alerts.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn server_error_is_retried_then_delivered() {
        let hook = WebhookReceiver::start(
            &[Reply::Status(500), Reply::Status(503)],
            Reply::Status(200),
        );
        let alerts = Alerts::start(&config(&[&hook])).expect("start");
        alerts.notify(json!({"client": "c1"}));
        eventually("sent", || count(&alerts.stats().sent) == 1);
        let calls = hook.received();
        assert_eq!(calls.len(), 3);
        assert!(
            calls.iter().all(|c| c.body == calls[0].body),
            "a retry sends the same body"
        );
        assert!(calls.iter().all(|c| signature_valid(c, SECRET)));
        assert_eq!(count(&alerts.stats().retried), 2);
        assert_eq!(count(&alerts.stats().failed), 0);
        alerts.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        // An hour asked for; backoff_max_ms (10 ms) caps it, so the retry comes at once.
        let hook = WebhookReceiver::start(&[Reply::TooMany(3600)], Reply::Status(200));
        let alerts = Alerts::start(&config(&[&hook])).expect("start");
        alerts.notify(json!({"client": "c1"}));
        eventually("sent", || count(&alerts.stats().sent) == 1);
        assert_eq!(hook.received().len(), 2);
        assert_eq!(count(&alerts.stats().retried), 1);
        alerts.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn client_error_fails_without_retrying() {
        let hook = WebhookReceiver::start(&[], Reply::Status(400));
        let alerts = Alerts::start(&config(&[&hook])).expect("start");
        alerts.notify(json!({"client": "c1"}));
        eventually("failed", || count(&alerts.stats().failed) == 1);
        assert_eq!(hook.received().len(), 1);
        assert_eq!(count(&alerts.stats().retried), 0);
        assert_eq!(count(&alerts.stats().sent), 0);
        alerts.shutdown(Duration::from_secs(5));
        assert_eq!(
            hook.received().len(),
            1,
            "a refused alert is not sent again"
        );
    }

    #[test]
    fn dead_webhook_is_retried_then_given_up() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", closed.local_addr().expect("addr"));
        drop(closed);
        let alerts = Alerts::start(&AlertConfig {
            webhooks: vec![crate::config::WebhookUrl::parse(&url).expect("a webhook URL")],
            retries: 3,
            ..config(&[])
        })
        .expect("start");
        alerts.notify(json!({"client": "c1"}));
        eventually("failed", || count(&alerts.stats().failed) == 1);
        assert_eq!(count(&alerts.stats().retried), 3);
        assert_eq!(count(&alerts.stats().sent), 0);
        alerts.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn hanging_webhook_never_blocks_notify() {
        let hook = WebhookReceiver::start(&[], Reply::Hang);
        let alerts = Alerts::start(&AlertConfig {
            queue: 16,
            timeout_secs: 120,
            ..config(&[&hook])
        })
        .expect("start");
        alerts.notify(json!({"n": 0}));
        // The thread is now inside a call that will not be answered.
        hook.wait_for(1);
        for n in 1..=10_000 {
            alerts.notify(json!({ "n": n }));
        }
        assert_eq!(count(&alerts.stats().dropped), 10_000 - 16);
        assert_eq!(count(&alerts.stats().sent), 0);
        // Returns after the grace although the call is still hanging.
        alerts.shutdown(Duration::from_millis(50));
    }

    #[test]
    fn slow_webhook_does_not_hold_up_another() {
        let stuck = WebhookReceiver::start(&[], Reply::Hang);
        let fine = WebhookReceiver::start(&[], Reply::Status(200));
        let alerts = Alerts::start(&AlertConfig {
            timeout_secs: 120,
            ..config(&[&stuck, &fine])
        })
        .expect("start");
        alerts.notify(json!({"n": 0}));
        // The stuck webhook's thread is now inside a call that will not be answered.
        stuck.wait_for(1);
        for n in 1..4 {
            alerts.notify(json!({ "n": n }));
            fine.wait_until(&format!("flag {n}"), |calls| {
                calls.iter().map(Received::flag_count).sum::<u64>() > n
            });
        }
        assert_eq!(stuck.received().len(), 1);
        alerts.shutdown(Duration::from_millis(50));
    }

    /// A webhook allowed one call a minute that has just made it (flag 0 delivered).
    fn permit_just_used() -> (WebhookReceiver, Alerts) {
        let hook = WebhookReceiver::start(&[], Reply::Status(200));
        let alerts = Alerts::start(&AlertConfig {
            per_minute: 1,
            ..config(&[&hook])
        })
        .expect("start");
        alerts.notify(json!({"n": 0}));
        hook.wait_for(1);
        (hook, alerts)
    }

    #[test]
    fn shutdown_delivers_pending_alerts() {
        let (hook, alerts) = permit_just_used();
        // The next permit is a minute away: these wait.
        for n in 1..=5 {
            alerts.notify(json!({ "n": n }));
        }
        alerts.shutdown(Duration::from_secs(10));
        let calls = hook.received();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].json()["type"], "digest");
        assert_eq!(calls[1].flag_count(), 5);
    }

    #[test]
    fn a_flag_waiting_for_its_permit_goes_out_at_shutdown_without_waiting_out_the_grace() {
        let (hook, alerts) = permit_just_used();
        // Give the webhook's thread time to take flag 1 and start waiting for the next permit.
        alerts.notify(json!({"n": 1}));
        std::thread::sleep(Duration::from_millis(200));
        alerts.notify(json!({"n": 2}));
        alerts.shutdown(Duration::from_secs(30));
        let calls = hook.received();
        assert_eq!(calls.len(), 2, "the waiting flags were sent in a last call");
        assert_eq!(calls[1].flag_count(), 2);
    }

    #[test]
    fn no_webhooks_is_a_no_op() {
        let alerts = Alerts::start(&AlertConfig::default()).expect("start");
        for n in 0..1000 {
            alerts.notify(json!({ "n": n }));
        }
        assert_eq!(count(&alerts.stats().dropped), 0);
        assert_eq!(count(&alerts.stats().sent), 0);
        alerts.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn start_refuses_a_config_with_problems() {
        let hook = crate::config::WebhookUrl::parse("https://hooks.example.org/x").expect("url");
        let no_secret = AlertConfig {
            webhooks: vec![hook],
            ..AlertConfig::default()
        };
        let refused = Alerts::start(&no_secret).err().expect("start refuses it");
        assert!(refused.to_string().contains("alert.secret"), "{refused}");
        let no_rate = AlertConfig {
            per_minute: 0,
            ..AlertConfig::default()
        };
        let refused = Alerts::start(&no_rate).err().expect("start refuses it");
        assert!(
            refused.to_string().contains("alert.per_minute"),
            "{refused}"
        );
    }

    #[test]
    fn logged_url_has_no_credentials_or_query() {
        assert_eq!(
            shown("https://user:pw@hooks.example.org:8443/a/b?token=x"),
            "https://hooks.example.org:8443/a/b"
        );
        assert_eq!(shown("http://[::1]:9/hook"), "http://[::1]:9/hook");
        assert_eq!(shown("not a url"), "(not a URL)");
    }

    #[test]
    fn backoff_doubles_within_the_cap() {
        let (_queue, receiver) = mpsc::sync_channel(1);
        let (done, _finished) = mpsc::channel();
        let worker = Worker::new(
            "http://127.0.0.1:9/hook",
            &AlertConfig {
                backoff_initial_ms: 100,
                backoff_max_ms: 1000,
                ..config(&[])
            },
            receiver,
            Arc::default(),
            Arc::default(),
            done,
        );
        for (retry, (low, high)) in [
            (0, (50, 100)),
            (1, (100, 200)),
            (3, (400, 800)),
            (9, (500, 1000)),
            (40, (500, 1000)),
        ] {
            let wait = worker.backoff(retry).as_millis();
            assert!((low..=high).contains(&wait), "retry {retry}: {wait} ms");
        }
    }
}
