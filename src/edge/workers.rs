//! The threads that serve connections. One acceptor hands each new connection to a worker
//! thread, which runs its own single-threaded tokio runtime and keeps the connection for its
//! whole life: the client's connection, the handler and the upstream connection it borrows
//! from that worker's own pool all run on one thread, so a proxied request never wakes
//! another thread. A new connection goes to the worker with the fewest open ones.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// What an accepted connection holds until it closes: its place among `max_connections` and,
/// for a counted address, among its address's connections.
pub type Permit = (OwnedSemaphorePermit, Option<super::limits::Slot>);

/// What a worker runs for one connection: (worker index, stream, peer).
pub type ServeConn = Arc<
    dyn Fn(usize, TcpStream, SocketAddr) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: Permit,
}

struct Worker {
    tx: mpsc::UnboundedSender<Accepted>,
    open: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

pub struct Workers {
    workers: Vec<Worker>,
}

/// How many workers `serve.workers` asks for: 0 = one per core.
pub fn count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

impl Workers {
    /// Starts `n` worker threads, each running `serve` for the connections it is given.
    pub fn start(n: usize, serve: ServeConn) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(n);
        for index in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, mut rx) = mpsc::unbounded_channel::<Accepted>();
            let open = Arc::new(AtomicUsize::new(0));
            let (serve, count) = (serve.clone(), open.clone());
            let thread = std::thread::Builder::new()
                .name(format!("faceprobe-edge-{index}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(a) = rx.recv().await {
                            let conn = TcpStream::from_std(a.stream)
                                .map(|stream| serve(index, stream, a.peer));
                            let count = count.clone();
                            tokio::spawn(async move {
                                if let Ok(conn) = conn {
                                    conn.await;
                                }
                                count.fetch_sub(1, Relaxed);
                                drop(a.permit);
                            });
                        }
                    });
                })?;
            workers.push(Worker { tx, open, thread });
        }
        Ok(Workers { workers })
    }

    /// Hands a new connection to the least busy worker.
    pub fn dispatch(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        permit: Permit,
    ) -> std::io::Result<()> {
        let stream = stream.into_std()?;
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Relaxed))
            .expect("at least one worker");
        w.open.fetch_add(1, Relaxed);
        if w.tx
            .send(Accepted {
                stream,
                peer,
                permit,
            })
            .is_err()
        {
            w.open.fetch_sub(1, Relaxed);
        }
        Ok(())
    }

    /// Closes the workers' queues and waits for their threads; connections still open are
    /// dropped with their runtimes (the caller has let them finish first).
    pub fn stop(self) {
        let threads: Vec<_> = self
            .workers
            .into_iter()
            .map(|w| {
                drop(w.tx);
                w.thread
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_connection_stays_on_one_worker_and_new_ones_go_to_the_least_busy() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
            let log = seen.clone();
            let serve: ServeConn = Arc::new(move |index, mut stream, _peer| {
                let log = log.clone();
                Box::pin(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 16];
                    // Two messages on one connection: both must be read by the same thread.
                    for _ in 0..2 {
                        let n = stream.read(&mut buf).await.unwrap_or(0);
                        let thread = std::thread::current().name().unwrap_or("").to_string();
                        log.lock().unwrap().push((index, thread));
                        let _ = stream.write_all(&buf[..n]).await;
                    }
                })
            });
            let workers = Workers::start(2, serve).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let limit = Arc::new(tokio::sync::Semaphore::new(8));
            let mut clients = Vec::new();
            for _ in 0..2 {
                let client = TcpStream::connect(addr).await.unwrap();
                let (stream, peer) = listener.accept().await.unwrap();
                let permit = limit.clone().acquire_owned().await.unwrap();
                workers.dispatch(stream, peer, (permit, None)).unwrap();
                clients.push(client);
            }
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for round in 0..2u8 {
                for c in clients.iter_mut() {
                    c.write_all(&[round]).await.unwrap();
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).await.unwrap();
                    assert_eq!(b[0], round);
                }
            }
            drop(clients);
            workers.stop();
            let seen = seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 4);
            // The two connections went to different workers (least busy first)…
            let mut indexes: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
            indexes.sort();
            indexes.dedup();
            assert_eq!(indexes, vec![0, 1]);
            // …and each worker's reads ran on that worker's own thread.
            for (i, thread) in &seen {
                assert_eq!(thread, &format!("faceprobe-edge-{i}"));
            }
            // Permits came back when the connections ended.
            assert_eq!(limit.available_permits(), 8);
        });
    }
}
