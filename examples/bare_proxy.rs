//! The floor of the edge benchmark: a bare reverse proxy on the same stack as faceprobe's
//! edge (hyper 1 on one current-thread tokio runtime per worker, and faceprobe's own pooled
//! HTTP/1 upstream connections, `edge::proxy::Proxy`) with none of faceprobe's work: no
//! events, no recorder, no canary, no header rewriting. What it reaches in
//! `BARE=1 scripts/bench-edge` is what the stack itself allows on the machine.
//!
//! With a fifth argument, a data directory, it also records every request the way faceprobe
//! does and nothing else: the client's key (once per connection and user agent), the event of
//! the request's headers (`edge::client::event_of`), and faceprobe's recorder (`record::start`:
//! the bounded queue, the writer thread, one SQLite row per request with its IP commitment and
//! chain value) with its detector fed by the writer (`detect::runner::start`, default
//! settings). `BARE_RECORD=1 scripts/bench-edge` measures it: the floor, on this stack and
//! machine, of any edge that stores and watches a chained row per request.
//!
//! Run: cargo run --release --example bare_proxy -- LISTEN UPSTREAM WORKERS [DATA_DIR]
//!      e.g. 127.0.0.1:8090 127.0.0.1:8080 2

// faceprobe's allocator (src/main.rs), so that the floor is measured on the same footing.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use faceprobe::config::RecordConfig;
use faceprobe::edge::client::{event_of, Keys, Trusted, Visitor};
use faceprobe::edge::proxy::{Proxy, Upstream};
use faceprobe::edge::Body;
use faceprobe::metrics::Metrics;
use faceprobe::record::{Kind, Recorder};
use faceprobe::store::now_ms;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the recording mode shares between workers and requests.
struct Recording {
    recorder: Recorder,
    keys: Keys,
    trusted: Trusted,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_proxy LISTEN UPSTREAM WORKERS [DATA_DIR] (addresses as IP:PORT)";
    let (Some(listen), Some(upstream), Some(workers)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2)
            .and_then(|a| Upstream::parse(&format!("http://{a}")).ok()),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let recording = args.get(4).map(|dir| {
        let dir = std::path::Path::new(dir);
        std::fs::create_dir_all(dir).expect("the data directory can be created");
        let secret = faceprobe::store::secret::load_or_create(dir, None).expect("a secret");
        let metrics = Arc::new(Metrics::default());
        let config = RecordConfig::default();
        let (recorder, writer) = faceprobe::record::start(dir, &config, secret, metrics.clone())
            .expect("the recorder starts");
        let options = faceprobe::detect::runner::Options {
            config: faceprobe::detect::DetectConfig::default(),
            raw_ip_hours: config.raw_ip_hours,
            secret,
            alert_level: faceprobe::detect::Level::Harvester,
            notify: None,
        };
        let detector = faceprobe::detect::runner::start(dir, options, metrics, Some(&recorder))
            .expect("the detector starts");
        // Both run until the process is killed at the end of the benchmark.
        std::mem::forget((writer, detector));
        Arc::new(Recording {
            recorder,
            keys: Keys::new(&secret),
            trusted: Trusted::new(Vec::new()),
        })
    });
    // One listener per worker (SO_REUSEPORT): the kernel spreads the connections.
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let (upstream, recording) = (upstream.clone(), recording.clone());
            std::thread::spawn(move || worker(listen, upstream, recording))
        })
        .collect();
    for t in threads {
        match t.join() {
            Ok(Err(e)) => eprintln!("worker failed: {e}"),
            Err(e) => eprintln!("worker panicked: {e:?}"),
            Ok(Ok(())) => {}
        }
    }
}

fn worker(
    listen: SocketAddr,
    upstream: Upstream,
    recording: Option<Arc<Recording>>,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sock = match listen {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseport(true)?;
        sock.bind(listen)?;
        let listener = sock.listen(1024)?;
        let timer = faceprobe::edge::coarse::Coarse::start("bare-timer")?;
        let proxy = Arc::new(Proxy::new(upstream, Duration::from_secs(30), timer));
        loop {
            let (stream, peer) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            let recording = recording.clone();
            tokio::spawn(async move {
                let visitor = recording
                    .as_ref()
                    .map(|r| Arc::new(Visitor::new(peer.ip(), &r.trusted)));
                let service = hyper::service::service_fn(move |req| {
                    let (proxy, recording, visitor) =
                        (proxy.clone(), recording.clone(), visitor.clone());
                    async move {
                        let response = match (recording, visitor) {
                            (Some(r), Some(v)) => recorded(&proxy, &r, &v, req).await,
                            _ => forward(&proxy, req).await,
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// `forward`, with the request's event queued once the response's head is back, as faceprobe
/// does for a small response (status, Content-Length, duration).
async fn recorded(
    proxy: &Proxy,
    recording: &Recording,
    visitor: &Visitor,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let client = visitor.client(&recording.trusted, &recording.keys, &parts.headers);
    let mut event = event_of(&parts, &client, now_ms());
    let response = forward(proxy, Request::from_parts(parts, body)).await;
    event.kind = Some(Kind::Asset);
    event.status = response.status().as_u16();
    event.bytes = faceprobe::edge::declared_length(response.headers()).unwrap_or(0);
    event.duration_us = started.elapsed().as_micros() as u64;
    recording.recorder.record(event);
    response
}

/// The request as it came (path and query, headers), its response as it comes back.
async fn forward(proxy: &Proxy, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let mut uri = http::uri::Parts::default();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    if let Ok(origin_form) = Uri::from_parts(uri) {
        parts.uri = origin_form;
    }
    let body = body.map_err(|e| e.into()).boxed_unsync();
    match proxy.send(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(|b| b.map_err(|e| e.into()).boxed_unsync()),
        Err(e) => {
            let mut r = Response::new(faceprobe::edge::full(format!("{e}\n")));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    }
}
