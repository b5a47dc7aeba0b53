//! The edge: `faceprobe serve` on hyper 1. It answers requests (proxied, demo site, or
//! faceprobe's own paths), plants canaries in HTML, and turns every request into one `Event`
//! for the recorder. It never waits on SQLite except to commit a canary fetch before sending
//! the canary's body.
//!
//! Limits are part of the server: a semaphore bounds connections, hyper bounds the request
//! head and its read time (slowloris, idle keep-alive), a cap bounds request bodies; shutdown
//! stops accepting, lets in-flight requests finish, then flushes the recorder.

mod admin;
mod bounded;
pub mod canary;
pub mod client;
pub mod coarse;
pub mod demo;
pub mod inject;
mod limits;
pub mod logs;
pub mod proxy;
pub mod robots;
pub mod sched;
mod workers;

use crate::config::{Config, Mode, ServeConfig};
use crate::metrics::Metrics;
use crate::record::event::TokenHashes;
use crate::record::{Event, Kind, Record, Recorder};
use crate::store::signing::SigningKey;
use crate::store::{now_ms, secret, Store, StoreError};
use bytes::Bytes;
use canary::Canaries;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body the edge sends.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// HTML pages of a declared length up to this are read whole and planted through
/// `inject::Placements` (a page seen before is not parsed again); longer ones are streamed.
const WHOLE_PAGE_MAX: u64 = 256 * 1024;
/// Bytes of pages kept to recognise a page seen before (see `inject::Placements`).
const PLACEMENTS_BUDGET: usize = 16 * 1024 * 1024;

/// Largest robots.txt or tdmrep.json read from the upstream.
const ROBOTS_CAP: usize = 512 * 1024;

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

/// The length a message's `Content-Length` declares, when it holds a number.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr} ({key}): {source}; choose a free address with {fix}")]
    Bind {
        addr: String,
        key: &'static str,
        fix: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the alert webhooks: {0}")]
    Alerts(#[from] crate::detect::alert::AlertError),
}

/// What every request handler shares.
pub struct App {
    mode: Mode,
    /// One upstream client (and connection pool) per worker thread, indexed by worker.
    proxies: Vec<proxy::Proxy>,
    demo: Option<demo::Demo>,
    canaries: Canaries,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    logs: logs::LogGate,
    trusted: client::Trusted,
    keys: client::Keys,
    placements: Arc<inject::Placements>,
    /// robots.txt versions already stored (by SHA-256), so each is sent to the store once.
    robots_seen: Mutex<HashSet<[u8; 32]>>,
    max_body: u64,
    /// How long an HTML page read whole may take (`serve.upstream_timeout_secs`).
    page_timeout: Duration,
    /// Each worker's timer for the deadlines of its requests.
    timers: Vec<coarse::Coarse>,
    /// The signing key's public line, published at `/.well-known/faceprobe-key.pub` so an
    /// authority takes the key from the site's own domain, not from a bundle.
    public_key: Bytes,
}

/// What answers on the admin listener: given the bound listener and the edge's counters, a
/// future that serves until it is dropped at shutdown. `None` to `serve` keeps the bare
/// `/healthz` and `/metrics`; `faceprobe serve` passes the review dashboard (which the edge
/// may not import: data flows one way).
pub type AdminService =
    Box<dyn FnOnce(TcpListener, Arc<Metrics>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Runs the edge until `shutdown` completes, then drains and flushes. Each step of the start
/// and of the shutdown is a function below, in the order they run.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
    admin: Option<AdminService>,
    metrics: Arc<Metrics>,
) -> Result<(), ServeError> {
    let mode = config.effective_mode();
    let data_dir = config.store.data_dir.clone();
    let (secret, signing) = open_store(&config)?;
    let (recorder, _writer) = start_recorder(&config, mode, secret, &metrics).await?;
    let detector = start_detector(&config, secret, &metrics, &recorder)?;
    let sealer = crate::canary::seal::Sealer::new(
        &secret,
        crate::canary::seal::Sealer::replica_of(&config.fleet.instance_name()),
    );
    let canaries = Canaries::new(
        &data_dir,
        secret,
        sealer,
        config.canary.clone(),
        config.canary.jpeg_quality,
        recorder.clone(),
        metrics.clone(),
    )?;
    let (public, admin_listener) = bind_listeners(&config.serve).await?;
    let app = Arc::new(App::new(
        &config, mode, canaries, secret, &signing, &recorder, &metrics,
    )?);
    announce(&config, mode, &public, &admin_listener);
    let admin_task = match admin {
        Some(service) => tokio::spawn(service(admin_listener, metrics.clone())),
        None => tokio::spawn(admin::run(admin_listener, metrics.clone())),
    };
    let summary_task = tokio::spawn(summarize_logs(app.clone()));
    // Taken (None) once shutdown starts: a connection a worker picks up after that is closed.
    let graceful = Arc::new(Mutex::new(Some(
        hyper_util::server::graceful::GracefulShutdown::new(),
    )));
    let workers = start_workers(&config.serve, &app, &metrics, &graceful)?;
    let per_address = limits::PerAddress::new(
        config.serve.max_connections_per_address,
        client::Trusted::new(config.serve.trusted_proxies.clone()),
    );
    let limits = (config.serve.max_connections, per_address, metrics.as_ref());
    accept_until(shutdown, &public, &workers, limits).await;
    drop(public);
    finish_requests(
        &graceful,
        Duration::from_secs(config.serve.shutdown_grace_secs),
    )
    .await;
    admin_task.abort();
    summary_task.abort();
    let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    flush_recorder(&recorder, &metrics).await;
    if let Some(d) = detector {
        // The detector reads what the recorder committed last, writes its flags, and ends.
        let _ = tokio::task::spawn_blocking(move || d.stop()).await;
    }
    Ok(())
}

/// Opens (or creates, migrating) the store; loads the deployment secret and the signing key.
fn open_store(config: &Config) -> Result<([u8; 32], SigningKey), ServeError> {
    let data_dir = &config.store.data_dir;
    drop(Store::open(data_dir)?);
    let secret = secret::load_or_create(data_dir, config.store.secret_file.as_deref())?;
    let signing = SigningKey::load_or_create(data_dir, config.evidence.signing_key.as_deref())
        .map_err(StoreError::from)?;
    Ok((secret, signing))
}

/// Starts the recorder's writer; outside proxy mode, records the robots.txt faceprobe serves
/// before any request comes.
async fn start_recorder(
    config: &Config,
    mode: Mode,
    secret: [u8; 32],
    metrics: &Arc<Metrics>,
) -> Result<(Recorder, crate::record::WriterHandle), ServeError> {
    let (recorder, writer) = crate::record::start(
        &config.store.data_dir,
        &config.record,
        secret,
        metrics.clone(),
    )?;
    if mode != Mode::Proxy {
        // Known before anyone asks: the detector judges robots.txt breaches by it from the
        // first request on (in proxy mode it learns the upstream's at its first fetch).
        let (body, source) = own_robots(mode);
        let sent = recorder
            .send(Record::Robots {
                sha256: Sha256::digest(body.as_bytes()).into(),
                body: body.into_bytes(),
                source,
            })
            .await;
        if sent.is_ok() {
            let _ = recorder.flush().await;
        }
    }
    Ok((recorder, writer))
}

/// Starts the detector (fed by the recorder) and its alert webhooks, unless detection is off.
fn start_detector(
    config: &Config,
    secret: [u8; 32],
    metrics: &Arc<Metrics>,
    recorder: &Recorder,
) -> Result<Option<crate::detect::DetectorHandle>, ServeError> {
    if !config.detect.enabled {
        return Ok(None);
    }
    let options = crate::detect::runner::Options {
        config: config.detect.clone(),
        raw_ip_hours: config.record.raw_ip_hours,
        secret,
        alert_level: config.alert.level,
        notify: match config.alert.webhooks.is_empty() {
            true => None,
            false => Some(Box::new(crate::detect::alert::Alerts::start(
                &config.alert,
            )?)),
        },
    };
    Ok(Some(crate::detect::start(
        &config.store.data_dir,
        options,
        metrics.clone(),
        Some(recorder),
    )?))
}

/// The public and the admin listener, bound before anything is served.
async fn bind_listeners(s: &ServeConfig) -> Result<(TcpListener, TcpListener), ServeError> {
    let bind = |addr: std::net::SocketAddr, key, fix| {
        let addr = addr.to_string();
        async move {
            TcpListener::bind(&addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr,
                    key,
                    fix,
                    source,
                })
        }
    };
    let public = bind(s.listen, "serve.listen", "--listen ADDR or serve.listen").await?;
    let admin = bind(s.admin_listen, "serve.admin_listen", "serve.admin_listen").await?;
    Ok((public, admin))
}

impl App {
    /// What the handlers share, with one coarse timer (and in proxy mode one upstream pool)
    /// per worker thread of `serve.workers`.
    fn new(
        config: &Config,
        mode: Mode,
        canaries: Canaries,
        secret: [u8; 32],
        signing: &SigningKey,
        recorder: &Recorder,
        metrics: &Arc<Metrics>,
    ) -> Result<App, ServeError> {
        let timers = (0..workers::count(config.serve.workers))
            .map(|i| coarse::Coarse::start(&format!("faceprobe-timer-{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StoreError::Thread {
                what: "edge timer",
                source,
            })?;
        Ok(App {
            mode,
            proxies: proxies(mode, &config.serve, &timers),
            demo: (mode == Mode::Demo).then(demo::Demo::new),
            canaries,
            recorder: recorder.clone(),
            metrics: metrics.clone(),
            logs: logs::LogGate::new(
                config.log.per_client_per_minute,
                config.log.total_per_second,
                metrics.clone(),
            ),
            trusted: client::Trusted::new(config.serve.trusted_proxies.clone()),
            keys: client::Keys::new(&secret),
            placements: Arc::new(inject::Placements::new(PLACEMENTS_BUDGET)),
            robots_seen: Mutex::new(HashSet::new()),
            max_body: config.serve.max_body_bytes,
            page_timeout: Duration::from_secs(config.serve.upstream_timeout_secs),
            timers,
            public_key: Bytes::from(format!("{}\n", signing.public_line())),
        })
    }
}

/// In proxy mode, one upstream client (and connection pool) per worker, on its timer.
fn proxies(mode: Mode, s: &ServeConfig, timers: &[coarse::Coarse]) -> Vec<proxy::Proxy> {
    match (mode, &s.upstream) {
        (Mode::Proxy, Some(upstream)) => {
            let timeout = Duration::from_secs(s.upstream_timeout_secs);
            timers
                .iter()
                .map(|timer| proxy::Proxy::new(upstream.clone(), timeout, timer.clone()))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The one line saying where faceprobe listens, in which mode, and where its data is.
fn announce(config: &Config, mode: Mode, public: &TcpListener, admin: &TcpListener) {
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let (public_addr, admin_addr) = (addr(public), addr(admin));
    let what = match mode {
        Mode::Proxy => format!(
            "proxy to {}",
            config.serve.upstream.as_ref().map_or("", |u| u.as_str())
        ),
        Mode::Embed => "embed (faceprobe paths only)".to_string(),
        _ => "demo site (no upstream configured)".to_string(),
    };
    tracing::info!(
        "faceprobe listening on http://{public_addr}/ in {what} mode; dashboard and metrics on http://{admin_addr}/; data in {}",
        config.store.data_dir.display()
    );
}

/// Once a minute, the summary of the request log lines suppressed.
async fn summarize_logs(app: Arc<App>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    every.tick().await;
    loop {
        every.tick().await;
        app.logs.summarize();
    }
}

/// Starts the worker threads (one per timer of `app`); each serves the connections handed to
/// it over HTTP/1 or HTTP/2 with the limits of `[serve]`, watched by `graceful`.
fn start_workers(
    s: &ServeConfig,
    app: &Arc<App>,
    metrics: &Arc<Metrics>,
    graceful: &Arc<Mutex<Option<hyper_util::server::graceful::GracefulShutdown>>>,
) -> Result<workers::Workers, ServeError> {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .header_read_timeout(Duration::from_secs(s.header_timeout_secs))
        .max_buf_size(s.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(128)
        .max_header_list_size(s.max_header_bytes as u32)
        .keep_alive_interval(Duration::from_secs(s.header_timeout_secs.max(10)))
        .keep_alive_timeout(Duration::from_secs(s.header_timeout_secs.max(10)));
    let serve_conn: workers::ServeConn = {
        let (app, metrics, graceful) = (app.clone(), metrics.clone(), graceful.clone());
        let head_timeout = Duration::from_secs(s.header_timeout_secs);
        let send_timeout = Duration::from_secs(s.send_timeout_secs);
        Arc::new(move |worker, stream, peer| {
            let (app, metrics) = (app.clone(), metrics.clone());
            let (mut http1, http2) = (http1.clone(), http2.clone());
            // hyper's head-read timeout on the worker's own coarse timer.
            http1.timer(app.timers[worker].clone());
            let watcher = canary::lock(&graceful).as_ref().map(|g| g.watcher());
            Box::pin(async move {
                let Some(watcher) = watcher else { return };
                metrics.connections_open.fetch_add(1, Relaxed);
                // hyper's head timeout starts once the connection is handed to it; a client
                // that sends nothing (or half the HTTP/2 preface) must not hold a slot for ever.
                let protocol = protocol_of(&stream, head_timeout).await;
                let visitor = Arc::new(client::Visitor::new(peer.ip(), &app.trusted));
                let timer = app.timers[worker].clone();
                let service = hyper::service::service_fn(move |req| {
                    let (app, visitor) = (app.clone(), visitor.clone());
                    async move { Ok::<_, Infallible>(handle(app, worker, &visitor, req).await) }
                });
                let io = TokioIo::new(stream);
                let io = limits::SendTimeout::new(io, timer, send_timeout, metrics.clone());
                let ended = match protocol {
                    Some(Protocol::Http1) => {
                        watcher.watch(http1.serve_connection(io, service)).await
                    }
                    Some(Protocol::Http2) => {
                        watcher.watch(http2.serve_connection(io, service)).await
                    }
                    None => Ok(()),
                };
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                metrics.connections_open.fetch_sub(1, Relaxed);
            })
        })
    };
    let workers = workers::Workers::start(app.timers.len(), serve_conn).map_err(|source| {
        StoreError::Thread {
            what: "edge worker",
            source,
        }
    })?;
    Ok(workers)
}

/// Accepts connections, at most `max_connections` open at once and the share of
/// `per_address` from one address, and hands each to a worker, until `shutdown` completes.
async fn accept_until(
    shutdown: impl Future<Output = ()>,
    public: &TcpListener,
    workers: &workers::Workers,
    (max_connections, per_address, metrics): (usize, limits::PerAddress, &Metrics),
) {
    let connections = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            p = connections.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = public.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = per_address.admit(peer.ip()) else {
            // Closed at once, unread.
            metrics.connections_refused.fetch_add(1, Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        if let Err(e) = workers.dispatch(stream, peer, (permit, slot)) {
            tracing::warn!(error = %e, "could not hand a connection to a worker");
        }
    }
}

/// Lets the requests in flight finish within `grace`; those still running then are cut.
async fn finish_requests(
    graceful: &Mutex<Option<hyper_util::server::graceful::GracefulShutdown>>,
    grace: Duration,
) {
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let graceful = canary::lock(graceful).take().expect("taken only here");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {grace:?} were cut");
    }
}

/// Commits every event still queued, and says how many were written and dropped.
async fn flush_recorder(recorder: &Recorder, metrics: &Metrics) {
    match recorder.flush().await {
        Ok(()) => tracing::info!(
            written = metrics.events_written.load(Relaxed),
            dropped = metrics.events_dropped.load(Relaxed),
            "recorder flushed; stopped"
        ),
        Err(e) => tracing::error!(error = %e, "recorder could not be flushed"),
    }
}

/// Where the site publishes the signing key (every mode).
pub use crate::record::published::KEY_PATH;

/// robots.txt when faceprobe answers it itself (demo and embed modes), and where it is from.
fn own_robots(mode: Mode) -> (String, &'static str) {
    match mode {
        Mode::Demo => (robots::rewrite(demo::ROBOTS), "demo"),
        _ => (robots::DEFAULT.to_string(), "default"),
    }
}

/// The HTTP/2 connection preface; anything else is read as HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (faceprobe serves plain HTTP; there is no TLS to negotiate).
    Http2,
}

/// Waits, at most `timeout`, until the first bytes tell HTTP/1 from HTTP/2; None when the
/// client sent nothing decisive in time or closed.
async fn protocol_of(stream: &tokio::net::TcpStream, timeout: Duration) -> Option<Protocol> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 24];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return None,
        };
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Protocol::Http2);
        }
        // Part of the HTTP/2 preface so far: wait for the rest, still within the deadline.
        if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(20)))
            .await
            .is_err()
        {
            return None;
        }
    }
}

async fn handle(
    app: Arc<App>,
    worker: usize,
    visitor: &client::Visitor,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let client = visitor.client(&app.trusted, &app.keys, &parts.headers);
    let event = client::event_of(&parts, &client, now_ms());
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/_fp/") {
        return app.faceprobe_path(rest, &parts, event, started).await;
    }
    if path == "/robots.txt" {
        return app.robots(worker, &parts, event, started).await;
    }
    if path == KEY_PATH {
        let mut r = Response::new(full(app.public_key.clone()));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r.headers_mut()
            .insert(CONTENT_LENGTH, app.public_key.len().into());
        return app.finish(&parts.method, r, event, started, Kind::Other);
    }
    if path == "/.well-known/tdmrep.json" {
        let r = text(StatusCode::OK, "application/json", robots::TDMREP);
        return app.finish(&parts.method, r, event, started, Kind::Other);
    }
    match app.mode {
        Mode::Proxy => {
            app.proxied(worker, parts, body, event, started, &client)
                .await
        }
        Mode::Demo => {
            let resp = app
                .demo
                .as_ref()
                .map(|d| d.respond(path))
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "text/plain", "not found\n"));
            app.site_response(worker, &parts.method, resp, event, started)
                .await
        }
        _ => {
            let r = text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "faceprobe (embed mode) serves only /_fp/, /robots.txt, /.well-known/tdmrep.json and /.well-known/faceprobe-key.pub\n",
            );
            app.finish(&parts.method, r, event, started, Kind::Other)
        }
    }
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CONTENT_LENGTH, body.len().into());
    r
}

fn owned(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(CONTENT_LENGTH, len.into());
    r
}

/// What a response is, for the event: by its content type.
fn kind_of(content_type: Option<&str>) -> Kind {
    let ct = content_type.unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim();
    let is = |s: &str| ct.eq_ignore_ascii_case(s);
    let starts = |s: &str| ct.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s));
    if is("text/html") || is("application/xhtml+xml") {
        Kind::Page
    } else if starts("image/") {
        Kind::Image
    } else if is("text/css")
        || ct.to_ascii_lowercase().contains("javascript")
        || starts("font/")
        || is("application/wasm")
    {
        Kind::Asset
    } else {
        Kind::Other
    }
}

impl App {
    fn log_allowed(&self, event: &Event) -> bool {
        let prefix = event
            .ip
            .map(client::prefix)
            .unwrap_or_else(|| "unknown".into());
        self.logs.allow(&prefix)
    }

    /// Records a small response that is complete now (droppable kinds) and returns it.
    fn finish(
        &self,
        method: &Method,
        r: Response<Body>,
        mut event: Event,
        started: Instant,
        kind: Kind,
    ) -> Response<Body> {
        event.kind = Some(kind);
        event.status = r.status().as_u16();
        event.bytes = if method == Method::HEAD {
            0
        } else {
            declared_length(r.headers()).unwrap_or(0)
        };
        event.duration_us = started.elapsed().as_micros() as u64;
        self.recorder.record(event);
        r
    }

    async fn proxied(
        &self,
        worker: usize,
        parts: http::request::Parts,
        body: Incoming,
        event: Event,
        started: Instant,
        client: &client::Requester,
    ) -> Response<Body> {
        let Some(proxy) = self.proxies.get(worker) else {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "no upstream\n",
            );
        };
        let declared = declared_length(&parts.headers);
        if declared.is_some_and(|n| n > self.max_body) {
            self.metrics.rejected_requests.fetch_add(1, Relaxed);
            let r = text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain; charset=utf-8",
                "request body too large\n",
            );
            return self.finish(&parts.method, r, event, started, Kind::Other);
        }
        let limited = http_body_util::Limited::new(body, self.max_body as usize)
            .map_err(|e| -> BoxError { e })
            .boxed_unsync();
        let method = parts.method.clone();
        let req = Request::from_parts(parts, limited);
        match proxy.forward(req, client).await {
            Ok(resp) => {
                let resp = resp.map(|b| b.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync());
                self.site_response(worker, &method, resp, event, started)
                    .await
            }
            Err(proxy::ProxyError::BodyTooLarge) => {
                self.metrics.rejected_requests.fetch_add(1, Relaxed);
                let r = text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain; charset=utf-8",
                    "request body too large\n",
                );
                self.finish(&method, r, event, started, Kind::Other)
            }
            Err(e) => {
                let status = match e {
                    proxy::ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                let failed = (status, Kind::Other, "did not answer");
                self.site_failed(&method, event, started, failed, &e)
            }
        }
    }

    /// The site behind faceprobe failed before anything was sent: counted, logged (within the
    /// log limits), answered with `status` saying that it `what`, recorded as `kind`.
    fn site_failed(
        &self,
        method: &Method,
        event: Event,
        started: Instant,
        (status, kind, what): (StatusCode, Kind, &'static str),
        error: &dyn std::fmt::Display,
    ) -> Response<Body> {
        self.metrics.upstream_errors.fetch_add(1, Relaxed);
        if self.log_allowed(&event) {
            tracing::warn!(client = %event.client_key, path = %logs::escaped(&event.path), %error, "upstream {what}");
        }
        let r = owned(
            status,
            "text/plain; charset=utf-8",
            format!("faceprobe: the site behind this address {what}\n").into_bytes(),
        );
        self.finish(method, r, event, started, kind)
    }

    /// A response of the site (upstream or demo): canary planted in HTML, event recorded
    /// when the body has been sent (or the client went away).
    async fn site_response(
        &self,
        worker: usize,
        method: &Method,
        resp: Response<Body>,
        mut event: Event,
        started: Instant,
    ) -> Response<Body> {
        let (mut rparts, body) = resp.into_parts();
        // A copy of the value shares its bytes (no allocation), and frees the headers for edits.
        let content_type = rparts.headers.get(CONTENT_TYPE).cloned();
        let content_type = content_type.as_ref().and_then(|v| v.to_str().ok());
        let kind = kind_of(content_type);
        event.kind = Some(kind);
        event.status = rparts.status.as_u16();
        let coding = inject::Coding::parse(
            rparts
                .headers
                .get(http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok()),
        );
        let encoding = content_type.and_then(inject::encoding_of);
        let body = match (kind, coding, encoding) {
            (Kind::Page, Some(coding), Some(encoding))
                // Only a whole page: a 206 holds a range of one, which the markup would
                // corrupt (its Content-Range counts the upstream's bytes).
                if rparts.status == StatusCode::OK && method == Method::GET =>
            {
                let mint = self.canaries.mint(&event.client_key, None);
                let markup = Canaries::markup(&mint.token);
                event.mints.push(mint);
                let declared = declared_length(&rparts.headers);
                rparts.headers.remove(CONTENT_LENGTH);
                rparts.headers.remove("content-md5");
                if let Some(etag) = rparts.headers.get(http::header::ETAG).cloned() {
                    // The body differs per view now: a strong validator would be a lie.
                    let weak = etag.to_str().ok().map(|e| {
                        if e.starts_with("W/") {
                            e.to_string()
                        } else {
                            format!("W/{e}")
                        }
                    });
                    match weak.and_then(|w| HeaderValue::from_str(&w).ok()) {
                        Some(w) => rparts.headers.insert(http::header::ETAG, w),
                        None => rparts.headers.remove(http::header::ETAG),
                    };
                }
                match declared {
                    // A page of declared, bounded length is read whole and sent in one write
                    // with its new length (no chunked framing, no page sent in pieces).
                    Some(n) if coding == inject::Coding::Identity && n <= WHOLE_PAGE_MAX => {
                        let read = self.timers[worker]
                            .timeout(self.page_timeout, inject::read_whole(body, n as usize))
                            .await;
                        let planted = match read {
                            Err(_) => Err((
                                StatusCode::GATEWAY_TIMEOUT,
                                "did not send the whole page in time".into(),
                            )),
                            Ok(Err(e)) => Err((StatusCode::BAD_GATEWAY, e)),
                            Ok(Ok(page)) => self
                                .placements
                                .plant(&page, encoding, &markup)
                                .map_err(|e| (StatusCode::BAD_GATEWAY, e)),
                        };
                        match planted {
                            Ok(page) => {
                                rparts.headers.insert(CONTENT_LENGTH, page.len().into());
                                full(page)
                            }
                            Err((status, e)) => {
                                // Nothing was sent yet: the visitor gets a clean error, and
                                // the token minted for a page never sent is not kept.
                                event.mints.clear();
                                let failed = (status, Kind::Page, "sent an incomplete page");
                                return self.site_failed(method, event, started, failed, &e);
                            }
                        }
                    }
                    _ => inject::Injected::new(body, coding, encoding, markup).boxed_unsync(),
                }
            }
            _ => body,
        };
        let recorded = Recorded {
            inner: body,
            bytes: 0,
            pending: Some((event, started, self.recorder.clone())),
        };
        Response::from_parts(rparts, recorded.boxed_unsync())
    }

    async fn faceprobe_path(
        self: &Arc<Self>,
        rest: &str,
        parts: &http::request::Parts,
        mut event: Event,
        started: Instant,
    ) -> Response<Body> {
        if let Some(t) = rest.strip_prefix("c/") {
            event.kind = Some(Kind::Canary);
            return self.canary_image(t, parts, event, started).await;
        }
        if let Some(t) = rest.strip_prefix("g/") {
            event.kind = Some(Kind::Trap);
            return self.gallery(t, event, started).await;
        }
        if rest == "snippet" {
            // Embed mode: the site's proxy includes this fragment in its pages (SSI).
            let mint = self.canaries.mint(&event.client_key, None);
            let markup = Canaries::markup(&mint.token);
            event.mints.push(mint);
            let mut r = owned(
                StatusCode::OK,
                "text/html; charset=utf-8",
                markup.into_bytes(),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            return self.finish(&parts.method, r, event, started, Kind::Page);
        }
        let r = text(StatusCode::NOT_FOUND, "text/plain", "not found\n");
        self.finish(&parts.method, r, event, started, Kind::Other)
    }

    /// Evidence that something was asked for and not found: still recorded, never dropped.
    async fn evidence_not_found(&self, mut event: Event, started: Instant) -> Response<Body> {
        event.status = 404;
        event.duration_us = started.elapsed().as_micros() as u64;
        let _ = self.recorder.keep(event).await;
        text(StatusCode::NOT_FOUND, "text/plain", "not found\n")
    }

    async fn canary_image(
        self: &Arc<Self>,
        tail: &str,
        parts: &http::request::Parts,
        mut event: Event,
        started: Instant,
    ) -> Response<Body> {
        let Some(token) = client::token_in(tail) else {
            return self.evidence_not_found(event, started).await;
        };
        event.token = Some(token);
        // Lookup and rendering are blocking work: off the worker's thread.
        let app = self.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mint = app.canaries.lookup_blocking(&token).ok().flatten()?;
            let rendered = app.canaries.rendered_blocking(&mint)?;
            Some((mint, rendered))
        })
        .await
        .ok()
        .flatten();
        let canaries = &self.canaries;
        let Some((mint, rendered)) = found else {
            return self.evidence_not_found(event, started).await;
        };
        let head = parts.method == Method::HEAD;
        event.status = 200;
        event.bytes = if head { 0 } else { rendered.jpeg.len() as u64 };
        event.hashes = Some(TokenHashes {
            scheme_id: canaries.scheme_id(),
            hashes: rendered.hashes,
        });
        event.ensure_token = Some(mint);
        let client_key = event.client_key.clone();
        let log = self.log_allowed(&event);
        let ua = log.then(|| logs::escaped(event.user_agent.as_deref().unwrap_or("")));
        event.duration_us = started.elapsed().as_micros() as u64;
        match self.recorder.commit(event).await {
            Ok(id) => {
                self.metrics.canaries_served.fetch_add(1, Relaxed);
                if log {
                    tracing::info!(client = %client_key, token = %token, event = id, user_agent = %ua.unwrap_or_default(), "canary image fetched");
                }
                let mut r = Response::new(if head {
                    empty()
                } else {
                    full(rendered.jpeg.clone())
                });
                let h = r.headers_mut();
                h.insert(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
                h.insert(CONTENT_LENGTH, rendered.jpeg.len().into());
                h.insert(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("private, no-store"),
                );
                for (k, v) in crate::canary::marks::RESPONSE_HEADERS {
                    h.insert(k, HeaderValue::from_static(v));
                }
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "a canary fetch could not be recorded; refused with 503");
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "temporarily unavailable\n",
                );
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
        }
    }

    async fn gallery(
        self: &Arc<Self>,
        tail: &str,
        mut event: Event,
        started: Instant,
    ) -> Response<Body> {
        let Some(token) = client::token_in(tail) else {
            return self.evidence_not_found(event, started).await;
        };
        event.token = Some(token);
        let app = self.clone();
        let parent = tokio::task::spawn_blocking(move || {
            app.canaries.lookup_blocking(&token).ok().flatten()
        })
        .await
        .ok()
        .flatten();
        let Some(parent) = parent else {
            return self.evidence_not_found(event, started).await;
        };
        let (html, mints) = self.canaries.gallery(&event.client_key, &parent);
        if self.log_allowed(&event) {
            tracing::info!(client = %event.client_key, token = %token, depth = parent.depth + 1, "trap gallery fetched");
        }
        event.mints = mints;
        event.status = 200;
        event.bytes = html.len() as u64;
        event.duration_us = started.elapsed().as_micros() as u64;
        let _ = self.recorder.keep(event).await;
        let mut r = owned(
            StatusCode::OK,
            "text/html; charset=utf-8",
            html.into_bytes(),
        );
        let h = r.headers_mut();
        h.insert(
            "x-robots-tag",
            HeaderValue::from_static("noindex, nofollow, noai, noimageai"),
        );
        h.insert("tdm-reservation", HeaderValue::from_static("1"));
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        r
    }

    async fn robots(
        &self,
        worker: usize,
        parts: &http::request::Parts,
        mut event: Event,
        started: Instant,
    ) -> Response<Body> {
        let (body, source) = match (self.proxies.get(worker), self.mode) {
            (Some(p), _) => match p
                .fetch(
                    "/robots.txt",
                    parts.headers.get(http::header::HOST),
                    ROBOTS_CAP,
                )
                .await
            {
                Some((200, bytes)) => (
                    robots::rewrite(&String::from_utf8_lossy(&bytes)),
                    "upstream",
                ),
                _ => (robots::DEFAULT.to_string(), "default"),
            },
            (None, mode) => own_robots(mode),
        };
        let sha: [u8; 32] = Sha256::digest(body.as_bytes()).into();
        let new = canary::lock(&self.robots_seen).insert(sha);
        if new {
            let _ = self
                .recorder
                .send(Record::Robots {
                    sha256: sha,
                    body: body.clone().into_bytes(),
                    source,
                })
                .await;
        }
        event.kind = Some(Kind::Robots);
        event.robots_sha256 = Some(sha);
        event.status = 200;
        event.bytes = if parts.method == Method::HEAD {
            0
        } else {
            body.len() as u64
        };
        event.duration_us = started.elapsed().as_micros() as u64;
        if self.log_allowed(&event) {
            tracing::info!(client = %event.client_key, user_agent = %logs::escaped(event.user_agent.as_deref().unwrap_or("")), "robots.txt fetched");
        }
        let _ = self.recorder.keep(event).await;
        owned(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            body.into_bytes(),
        )
    }
}

/// A response body that records its event once sent in full, or once the client went away
/// (then with the bytes sent so far).
struct Recorded {
    inner: Body,
    bytes: u64,
    pending: Option<(Event, Instant, Recorder)>,
}

impl Recorded {
    fn emit(&mut self) {
        if let Some((mut event, started, recorder)) = self.pending.take() {
            event.bytes = self.bytes;
            event.duration_us = started.elapsed().as_micros() as u64;
            recorder.record(event);
        }
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.emit();
    }
}

impl http_body::Body for Recorded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => self.emit(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_classified_by_content_type() {
        assert_eq!(kind_of(Some("text/html; charset=utf-8")), Kind::Page);
        assert_eq!(kind_of(Some("image/webp")), Kind::Image);
        assert_eq!(kind_of(Some("application/javascript")), Kind::Asset);
        assert_eq!(kind_of(Some("text/css")), Kind::Asset);
        assert_eq!(kind_of(Some("application/json")), Kind::Other);
        assert_eq!(kind_of(None), Kind::Other);
        assert_eq!(kind_of(Some("Text/HTML; charset=UTF-8")), Kind::Page);
        assert_eq!(kind_of(Some("IMAGE/PNG")), Kind::Image);
        assert_eq!(kind_of(Some("Text/JavaScript")), Kind::Asset);
        assert_eq!(kind_of(Some("im")), Kind::Other);
    }
}
