//! Slow attacks with Debian's `slowhttptest`, from 127.0.0.1, each for a bounded time, on
//! faceprobe in proxy mode in front of a small site (a page and a 4 MB file): slow headers
//! (slowloris), a slow request body (R-U-Dead-Yet) and slow reads of the big file. The limits cut
//! them off (the head timeout, the connections one address may hold, the send timeout, the
//! upstream's timeout) while a probe client on another address (127.0.0.2) gets every answer: a
//! page and one of its canaries five times a second. Each attack's figures are printed:
//! connections slowhttptest saw closed, what faceprobe refused or cut, and the probe's slowest
//! answer.

mod common;

use common::{canary_token, get_from, tool_available, Env, ServeAddrs};
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

/// Seconds each attack runs.
const ATTACK_SECS: u64 = 12;
/// Connections each attack aims at, more than one address may hold here.
const ATTACK_CONNECTIONS: u32 = 400;
/// `serve.max_connections_per_address` in this test.
const PER_ADDRESS: u32 = 100;

/// The big file's size: far more than the kernel's socket buffers hold.
const BIG: usize = 4 << 20;

/// The site: `/` a page with photos, `/big` a 4 MB file; request bodies are read and dropped.
/// Returns its address.
fn site() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let big = Bytes::from(vec![b'x'; BIG]);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let big = big.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let big = big.clone();
                            async move {
                                let path = req.uri().path().to_string();
                                let _ = req.into_body().collect().await;
                                let (kind, body) = if path == "/big" {
                                    ("application/octet-stream", big)
                                } else {
                                    (
                                    "text/html; charset=utf-8",
                                    Bytes::from_static(
                                        b"<!doctype html><html><head><title>Photos</title></head>\
                                          <body><h1>Photos</h1><p>Our pictures.</p></body></html>",
                                    ),
                                )
                                };
                                hyper::Response::builder()
                                    .header("content-type", kind)
                                    .body(Full::new(body))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

/// What the probe saw during one attack.
struct Probe {
    asked: usize,
    failed: Vec<String>,
    slowest: Duration,
}

/// Asks for a page and one of its canaries from 127.0.0.2 until `stop`.
fn probe(addrs: ServeAddrs, stop: Arc<AtomicBool>) -> Probe {
    let from: IpAddr = "127.0.0.2".parse().unwrap();
    let mut out = Probe {
        asked: 0,
        failed: Vec::new(),
        slowest: Duration::ZERO,
    };
    while !stop.load(Relaxed) {
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let page = get_from(from, addrs.public, "/", &[]);
            if page.status != 200 {
                return Err(format!("page: {}", page.status));
            }
            let text = String::from_utf8_lossy(&page.body).into_owned();
            let start = text.find("/_fp/c/").ok_or("no canary on the page")?;
            let end = start + text[start..].find(".jpg").ok_or("no .jpg")? + 4;
            let canary = &text[start..end];
            canary_token(canary).ok_or("not a canary URL")?;
            let image = get_from(from, addrs.public, canary, &[]);
            if image.status != 200 {
                return Err(format!("canary: {}", image.status));
            }
            Ok(())
        }));
        out.slowest = out.slowest.max(started.elapsed());
        out.asked += 1;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.failed.push(e),
            Err(_) => out.failed.push("no answer (see the panic above)".into()),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    out
}

/// A metric's value from the admin listener.
fn metric(addrs: ServeAddrs, name: &str) -> f64 {
    let m = get_from("127.0.0.1".parse().unwrap(), addrs.admin, "/metrics", &[]);
    String::from_utf8_lossy(&m.body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// The last row of slowhttptest's statistics (seconds, closed, pending, connected, available).
fn last_stats(csv: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(csv).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Runs slowhttptest with `mode_args` for `ATTACK_SECS` while the probe asks; returns the
/// probe's figures and the connections slowhttptest saw closed.
fn attack(
    env: &Env,
    tool: &Path,
    addrs: ServeAddrs,
    (name, path, mode_args): (&str, &str, &[&str]),
) -> (Probe, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || probe(addrs, stop))
    };
    let prefix = env.path(&format!("slow-{name}"));
    let mut child = Command::new(tool)
        .args(mode_args)
        .args(["-c", &ATTACK_CONNECTIONS.to_string(), "-r", "200"])
        .args(["-l", &ATTACK_SECS.to_string(), "-p", "3", "-g", "-o"])
        .arg(&prefix)
        .args([
            "-u",
            &format!("http://127.0.0.1:{}{path}", addrs.public.port()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // slowhttptest ends by itself after its test length; a bound in case it does not.
    let deadline = Instant::now() + Duration::from_secs(ATTACK_SECS + 30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Relaxed);
    let probe = prober.join().unwrap();
    let stats = last_stats(&prefix.with_extension("csv"));
    let closed = stats.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    eprintln!("{name}: slowhttptest's last row (seconds, closed, pending, connected, available): {stats:?}");
    (probe, closed)
}

#[test]
fn slow_attacks_are_cut_off_while_a_probe_gets_every_answer() {
    let Some(tool) = tool_available("slowhttptest", "apt-get install slowhttptest") else {
        return;
    };
    let env = Env::new();
    let site = site();
    let addrs = env.configure_serve(
        &format!(
            "mode = \"proxy\"\nupstream = \"http://{site}\"\ntrusted_proxies = []\n\
             header_timeout_secs = 4\nsend_timeout_secs = 3\nupstream_timeout_secs = 5\n\
             max_connections_per_address = {PER_ADDRESS}"
        ),
        "",
    );
    let server = env.serve(addrs);

    let attacks: [(&str, &str, &[&str]); 3] = [
        ("slow headers", "/", &["-H", "-i", "2"]),
        ("slow body", "/", &["-B", "-i", "2", "-s", "65536"]),
        // Reads 32 bytes every 5 s through a tiny receive window.
        (
            "slow read",
            "/big",
            &["-X", "-w", "16", "-y", "32", "-n", "5", "-z", "32"],
        ),
    ];
    let mut failures = Vec::new();
    for (name, path, args) in attacks {
        let refused_before = metric(addrs, "faceprobe_connections_refused_total");
        let cut_before = metric(addrs, "faceprobe_connections_send_timeout_total");
        let (probe, closed) = attack(&env, &tool, addrs, (name, path, args));
        let refused = metric(addrs, "faceprobe_connections_refused_total") - refused_before;
        let cut = metric(addrs, "faceprobe_connections_send_timeout_total") - cut_before;
        // The attack's connections are gone soon after it stops.
        let settle = Instant::now();
        let open = loop {
            let open = metric(addrs, "faceprobe_connections_open");
            if open <= 1.0 || settle.elapsed() > Duration::from_secs(15) {
                break open;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        common::figure(&format!(
            "{name}: slowhttptest saw {closed} connections closed; faceprobe refused {refused} at \
             accept (per address), cut {cut} for the send timeout; probe: {} asked, {} failed, \
             slowest {:.0?}; connections open after: {open}",
            probe.asked,
            probe.failed.len(),
            probe.slowest
        ));
        if !probe.failed.is_empty() {
            failures.push(format!("{name}: the probe failed: {:?}", probe.failed));
        }
        if probe.asked < 5 {
            failures.push(format!(
                "{name}: the probe asked only {} times",
                probe.asked
            ));
        }
        if closed == 0 {
            failures.push(format!("{name}: no attack connection was closed"));
        }
        // Attacks that hold their connections meet the per-address limit.
        if name != "slow body" && refused < 1.0 {
            failures.push(format!(
                "{name}: {ATTACK_CONNECTIONS} connections from one address, none refused"
            ));
        }
        if name == "slow read" && cut < 1.0 {
            failures.push(format!("{name}: no connection cut by the send timeout"));
        }
        if open > 1.0 {
            failures.push(format!("{name}: {open} connections still open afterwards"));
        }
    }
    drop(server);
    assert!(failures.is_empty(), "{failures:#?}");
}
