//! The `[serve]` section: how `faceprobe serve` listens, forwards and limits.

use super::read::{keyword, scalar_setting, section, Bad, Scalar};
use super::Problem;
use http::uri::{Authority, Scheme};
use http::Uri;
use ipnet::IpNet;
use std::net::SocketAddr;

/// How `faceprobe serve` runs beside the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Proxy when an upstream is set, demo otherwise.
    Auto,
    /// In front of the site: forwards everything, injects canaries into HTML.
    Proxy,
    /// Beside the site: serves only faceprobe's own paths, which the site's proxy routes to it.
    Embed,
    /// No upstream: a built-in gallery site stands in for one.
    Demo,
}

keyword!(Mode { Auto => "auto", Proxy => "proxy", Embed => "embed", Demo => "demo" });

/// The Linux scheduling policy of `faceprobe serve`'s threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// `SCHED_BATCH`: a thread that wakes does not preempt the one running; it waits for
    /// that one's time slice to end. Fewer context switches per request on a busy machine.
    Batch,
    /// The kernel's default policy (`SCHED_OTHER`).
    Normal,
}

keyword!(Scheduling { Batch => "batch", Normal => "normal" });

/// The site proxy mode forwards to: `http://host[:port]`, checked once when it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    authority: Authority,
    /// As the operator wrote it, for logs and `config check`.
    text: String,
}

impl UpstreamUrl {
    /// `http://host[:port]`; a path is not allowed (faceprobe forwards paths as they come).
    pub fn parse(s: &str) -> Result<UpstreamUrl, String> {
        let uri: Uri = s.parse().map_err(|e| format!("{e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(
                "only http:// upstreams are supported (faceprobe runs beside the site; \
                        terminate TLS in front of faceprobe)"
                    .into(),
            );
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err("give the upstream without a path".into());
        }
        let authority = uri.authority().cloned().ok_or("no host")?;
        Ok(UpstreamUrl {
            authority,
            text: s.to_string(),
        })
    }

    /// Host and port, as a `Host` header and a connection need them.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// An empty string is no upstream.
impl Scalar for Option<UpstreamUrl> {
    fn parse(value: &toml::Value) -> Result<Self, Bad> {
        let fix = "use http://host:port (the site faceprobe forwards to), or \"\" for none";
        match value.as_str() {
            Some("") => Ok(None),
            Some(s) => UpstreamUrl::parse(s)
                .map(Some)
                .map_err(|e| Bad::new(e, fix)),
            None => Err(Bad::new("not a string", fix)),
        }
    }
    fn to_toml(&self) -> Option<toml::Value> {
        let text = self.as_ref().map_or("", UpstreamUrl::as_str);
        Some(toml::Value::String(text.to_string()))
    }
}

scalar_setting!(Option<UpstreamUrl>);

#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub mode: Mode,
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener (`/healthz`, `/metrics`); keep it private.
    pub admin_listen: SocketAddr,
    /// The site to forward to in proxy mode; written `""` for none.
    pub upstream: Option<UpstreamUrl>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` headers are believed (a single address
    /// is read as its own block).
    pub trusted_proxies: Vec<IpNet>,
    /// Threads that serve connections, each with its own event loop and upstream connection
    /// pool; 0 = one per core.
    pub workers: usize,
    /// Open client connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// Open connections one client address may hold (IPv6: one /64); more are closed at
    /// accept. Trusted proxies are not counted. 0 = no limit.
    pub max_connections_per_address: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Largest request body forwarded upstream, in bytes.
    pub max_body_bytes: u64,
    /// Seconds a client has to send a complete request head (slowloris); also how long an
    /// idle keep-alive connection is kept.
    pub header_timeout_secs: u64,
    /// Seconds the upstream has to answer a request.
    pub upstream_timeout_secs: u64,
    /// Seconds an answer may wait for the client to take a single byte (slow read); then
    /// the connection is closed.
    pub send_timeout_secs: u64,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Scheduling policy of every thread of `faceprobe serve` (Linux; ignored elsewhere).
    pub scheduling: Scheduling,
}

section!(ServeConfig {
    mode,
    listen,
    admin_listen,
    upstream,
    trusted_proxies,
    workers,
    max_connections,
    max_connections_per_address,
    max_header_bytes,
    max_body_bytes,
    header_timeout_secs,
    upstream_timeout_secs,
    send_timeout_secs,
    shutdown_grace_secs,
    scheduling,
});

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            mode: Mode::Auto,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8089)),
            upstream: None,
            trusted_proxies: vec![
                "127.0.0.1/32".parse().expect("a CIDR block"),
                "::1/128".parse().expect("a CIDR block"),
            ],
            workers: 0,
            max_connections: 4096,
            max_connections_per_address: 256,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            header_timeout_secs: 10,
            upstream_timeout_secs: 30,
            send_timeout_secs: 30,
            shutdown_grace_secs: 10,
            scheduling: Scheduling::Batch,
        }
    }
}

impl ServeConfig {
    pub(super) fn check(&self, p: &mut Vec<Problem>) {
        if self.mode == Mode::Proxy && self.upstream.is_none() {
            p.push(Problem::text(
                "serve.mode",
                "\"proxy\"",
                "proxy mode needs an upstream",
                "set serve.upstream (or --upstream URL), or use mode = \"demo\"",
            ));
        }
        let at_least = |p: &mut Vec<Problem>, key: &str, v: u64, min: u64, fix: &str| {
            if v < min {
                p.push(Problem::text(key, v, "too small", fix));
            }
        };
        at_least(
            p,
            "serve.max_connections",
            self.max_connections as u64,
            1,
            "use 1 or more",
        );
        at_least(
            p,
            "serve.max_header_bytes",
            self.max_header_bytes as u64,
            1024,
            "use 1024 bytes or more",
        );
        at_least(
            p,
            "serve.header_timeout_secs",
            self.header_timeout_secs,
            1,
            "use 1 second or more",
        );
        at_least(
            p,
            "serve.send_timeout_secs",
            self.send_timeout_secs,
            1,
            "use 1 second or more",
        );
    }
}
