//! The floor of the edge benchmark: a bare reverse proxy on the same stack as faceprobe's
//! edge (hyper 1 on one current-thread tokio runtime per worker, HTTP/1 to a pooled upstream
//! connection) with none of faceprobe's work (no events, no recorder, no canary). What it
//! reaches in `BARE=1 scripts/bench-edge` is what the stack itself allows on the machine.
//!
//! Run: cargo run --release --example bare_proxy -- LISTEN UPSTREAM WORKERS
//!      e.g. 127.0.0.1:8090 127.0.0.1:8080 2
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

struct Direct {
    upstream: SocketAddr,
    idle: Mutex<Vec<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

impl Direct {
    async fn send(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let mut sender = loop {
            let s = self.idle.lock().unwrap().pop();
            match s {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        break s;
                    }
                }
                None => {
                    let Ok(stream) = tokio::net::TcpStream::connect(self.upstream).await else {
                        return bad_gateway();
                    };
                    let _ = stream.set_nodelay(true);
                    let Ok((s, conn)) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
                    else {
                        return bad_gateway();
                    };
                    tokio::spawn(conn);
                    break s;
                }
            }
        };
        let Ok(resp) = sender.send_request(req).await else {
            return bad_gateway();
        };
        let me = self.clone();
        let (parts, body) = resp.into_parts();
        let body = Returning {
            inner: body,
            back: Some((sender, me)),
        };
        Response::from_parts(parts, body.boxed_unsync())
    }
}

fn bad_gateway() -> Response<Body> {
    let mut r = Response::new(
        http_body_util::Full::new(Bytes::from_static(b"bad gateway\n"))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = http::StatusCode::BAD_GATEWAY;
    r
}

struct Returning {
    inner: Incoming,
    back: Option<(
        hyper::client::conn::http1::SendRequest<Incoming>,
        Arc<Direct>,
    )>,
}

impl http_body::Body for Returning {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let p = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = &p {
            if let Some((s, d)) = self.back.take() {
                d.idle.lock().unwrap().push(s);
            }
        }
        p.map(|o| o.map(|r| r.map_err(|e| -> BoxError { Box::new(e) })))
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some((s, d)) = self.back.take() {
            if self.inner.is_end_stream() {
                d.idle.lock().unwrap().push(s);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bare_proxy LISTEN UPSTREAM WORKERS (addresses as IP:PORT)";
    let (Some(listen), Some(upstream), Some(workers)) = (
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(2).and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    // One listener per worker (SO_REUSEPORT): the kernel spreads the connections.
    let threads: Vec<_> = (0..workers.max(1))
        .map(|_| std::thread::spawn(move || worker(listen, upstream)))
        .collect();
    for t in threads {
        if let Err(e) = t.join() {
            eprintln!("worker failed: {e:?}");
        }
    }
}

fn worker(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
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
        let direct = Arc::new(Direct {
            upstream,
            idle: Mutex::new(Vec::new()),
        });
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let direct = direct.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let direct = direct.clone();
                    async move {
                        let mut parts = http::uri::Parts::default();
                        parts.path_and_query = req.uri().path_and_query().cloned();
                        if let Ok(uri) = Uri::from_parts(parts) {
                            *req.uri_mut() = uri;
                        }
                        Ok::<_, Infallible>(direct.send(req).await)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
