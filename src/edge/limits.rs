//! Limits on what one client can hold of the edge: open connections per address
//! (`serve.max_connections_per_address`) and how long an answer may sit unread
//! (`serve.send_timeout_secs`, the slow-read attack).
//!
//! Slowloris (a head sent a byte at a time) is cut by hyper's head timeout, a slow request body
//! by the upstream's timeout; what is left is a client that opens many connections and reads
//! nothing, or reads a few bytes now and then. The first is refused at accept once its address
//! holds its share; the second is closed when a write has waited `send_timeout_secs` for the
//! client to take a single byte.

use super::client::Trusted;
use super::coarse::{Coarse, CoarseSleep};
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Open connections per client address; IPv6 addresses count per /64, the block one
/// subscriber is usually given.
pub struct PerAddress {
    limit: u32,
    trusted: Trusted,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One admitted connection's place in its address's count; given back when dropped.
pub struct Slot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl PerAddress {
    /// At most `limit` connections per address (0: no limit); trusted proxies are not counted
    /// (every visitor behind them shares their address).
    pub fn new(limit: usize, trusted: Trusted) -> PerAddress {
        PerAddress {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            trusted,
            open: Arc::default(),
        }
    }

    /// A slot for a new connection from `ip`: None when its address already holds `limit`.
    /// Unlimited addresses get an empty slot.
    pub fn admit(&self, ip: IpAddr) -> Option<Option<Slot>> {
        if self.limit == 0 || self.trusted.contains(ip) {
            return Some(None);
        }
        let key = block_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Some(Slot {
            key,
            open: self.open.clone(),
        }))
    }

    /// Addresses holding at least one connection.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The key an address is counted under: itself for IPv4 (and IPv4-mapped IPv6), its /64 for
/// IPv6.
fn block_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

/// A connection whose writes fail with `TimedOut` once one has waited `limit` for the client
/// to take any byte. The timer is armed only while a write waits (on the worker's coarse
/// timer), so a client that reads costs nothing.
pub struct SendTimeout<T> {
    io: T,
    timer: Coarse,
    limit: Duration,
    waiting: Option<CoarseSleep>,
    /// Set once the limit was reached: every later write fails the same way.
    expired: bool,
    /// Where a cut connection is counted (`connections_send_timeout`).
    metrics: Arc<Metrics>,
}

impl<T> SendTimeout<T> {
    pub fn new(io: T, timer: Coarse, limit: Duration, metrics: Arc<Metrics>) -> SendTimeout<T> {
        SendTimeout {
            io,
            timer,
            limit,
            waiting: None,
            expired: false,
            metrics,
        }
    }

    /// Whether the limit cut this connection.
    #[cfg(test)]
    fn expired(&self) -> bool {
        self.expired
    }

    /// What a write that returned `poll` becomes: ready disarms the timer, pending arms it
    /// (once) and turns into an error when it fires.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                self.waiting = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let (timer, limit) = (&self.timer, self.limit);
                let sleep = self.waiting.get_or_insert_with(|| timer.sleep(limit));
                match Pin::new(sleep).poll(cx) {
                    Poll::Ready(()) => {
                        self.expired = true;
                        self.metrics
                            .connections_send_timeout
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        Poll::Ready(Err(stalled(limit)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

fn stalled(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the client took no byte of the answer for {}s (serve.send_timeout_secs)",
            limit.as_secs()
        ),
    )
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(stalled(this.limit)));
        }
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(stalled(this.limit)));
        }
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(blocks: &[&str]) -> Trusted {
        Trusted::new(blocks.iter().map(|b| b.parse().unwrap()).collect())
    }

    #[test]
    fn an_address_gets_its_share_and_its_slots_come_back() {
        let limits = PerAddress::new(2, trusted(&["10.0.0.1/32"]));
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "192.0.2.8".parse().unwrap();
        let first = limits.admit(a).unwrap();
        let second = limits.admit(a).unwrap();
        assert!(
            limits.admit(a).is_none(),
            "a third connection from one address"
        );
        assert!(
            limits.admit(b).unwrap().is_some(),
            "another address is not held up"
        );
        drop(first);
        let third = limits.admit(a).unwrap();
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(
            limits.addresses(),
            0,
            "counts of closed connections are forgotten"
        );
        // A trusted proxy carries many visitors: it is not counted.
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| limits.admit(proxy).unwrap()).collect();
        assert!(held.iter().all(Option::is_none));
        // 0: no limit at all.
        let open = PerAddress::new(0, trusted(&[]));
        assert!((0..100).all(|_| open.admit(a).is_some()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = PerAddress::new(1, trusted(&[]));
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _held = limits.admit(one).unwrap();
        assert!(limits.admit(same_64).is_none());
        assert!(limits.admit(other_64).is_some());
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let _v4 = limits.admit(v4).unwrap();
        assert!(limits.admit(mapped).is_none());
    }

    #[test]
    fn a_client_that_reads_nothing_is_cut_after_the_send_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use hyper::rt::Write;
            let timer = Coarse::start("test-timer").unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // The client connects and never reads.
            let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let io = hyper_util::rt::TokioIo::new(server);
            let metrics = Arc::new(Metrics::default());
            let mut io = SendTimeout::new(io, timer, Duration::from_millis(300), metrics.clone());
            let chunk = vec![7u8; 64 * 1024];
            let started = std::time::Instant::now();
            let mut sent = 0usize;
            let err = loop {
                match std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &chunk)).await {
                    Ok(n) => sent += n,
                    Err(e) => break e,
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "never cut ({sent} bytes)"
                );
            };
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert!(io.expired());
            let cut = metrics
                .connections_send_timeout
                .load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(cut, 1, "counted once");
            assert!(sent > 0, "the kernel's buffers took something first");
            // Later writes fail at once.
            let again = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, b"x")).await;
            assert!(again.is_err());
        });
    }
}
