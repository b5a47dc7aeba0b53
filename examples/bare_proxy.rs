//! The floor of the edge benchmark: a bare reverse proxy on the same stack as faceprobe's
//! edge (hyper 1 on one current-thread tokio runtime per worker, and faceprobe's own pooled
//! HTTP/1 upstream connections, `edge::proxy::Proxy`) with none of faceprobe's work: no
//! events, no recorder, no canary, no header rewriting. What it reaches in
//! `BARE=1 scripts/bench-edge` is what the stack itself allows on the machine.
//!
//! Run: cargo run --release --example bare_proxy -- LISTEN UPSTREAM WORKERS
//!      e.g. 127.0.0.1:8090 127.0.0.1:8080 2

use faceprobe::edge::proxy::{Proxy, Upstream};
use faceprobe::edge::Body;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_proxy LISTEN UPSTREAM WORKERS (addresses as IP:PORT)";
    let (Some(listen), Some(upstream), Some(workers)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2)
            .and_then(|a| Upstream::parse(&format!("http://{a}")).ok()),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    // One listener per worker (SO_REUSEPORT): the kernel spreads the connections.
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| {
            let upstream = upstream.clone();
            std::thread::spawn(move || worker(listen, upstream))
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

fn worker(listen: SocketAddr, upstream: Upstream) -> std::io::Result<()> {
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
        let proxy = Arc::new(Proxy::new(upstream, Duration::from_secs(30)));
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(forward(&proxy, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
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
