//! The traffic generator and evaluation harness of issue 4 (detection): starts a `faceprobe
//! serve` of its own in demo mode on free ports of 127.0.0.1, drives it over loopback with
//! people in browsers, a polite declared crawler and three kinds of harvester, each from source
//! addresses of its own in 127.0.0.0/8, waits until the server has caught up, then reads what
//! the detector concluded (`faceprobe clients --json`) and the event store, and scores it
//! (report.rs).
//!
//! Shared by `examples/traffic` (the command line) and `tests/detection.rs` (through
//! `#[path]`). It sends nothing off loopback, never sends X-Forwarded-For, and bounds every
//! loop in count and time.

#[path = "agents.rs"]
mod agents;
#[path = "net.rs"]
mod net;
#[path = "profiles.rs"]
mod profiles;
#[path = "report.rs"]
pub mod report;

pub use report::{Profile, Report};

use net::{Log, Net};
use report::{Actor, Event, Row, Setup};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a run is sized and paced.
#[derive(Debug, Clone)]
pub struct Config {
    /// Person sessions, and how many browse at once.
    pub sessions: usize,
    pub people_at_once: usize,
    /// A person's think time between pages, in ms (inclusive range).
    pub think_ms: (u64, u64),
    /// Actors of each harvester profile.
    pub bulk: usize,
    pub disguised: usize,
    pub rendering: usize,
    /// How long the polite crawler crawls (0: no polite crawler).
    pub polite_secs: u64,
    /// Requests each harvester actor makes at most (whole actor, all its addresses).
    pub budget: usize,
    /// Requests a bulk harvester keeps in flight.
    pub bulk_at_once: usize,
    /// Requests per second of a whole disguised actor (each address gets 1/50 of them).
    pub disguised_rate: f64,
    /// Pause of the rendering harvester between pages, in ms.
    pub render_pause_ms: u64,
    /// The `faceprobe` binary to run.
    pub binary: PathBuf,
    /// Keep the server's config, data and log in this directory (a temporary one otherwise).
    pub keep: Option<PathBuf>,
    /// Seeds every random choice of the generator.
    pub seed: u64,
}

/// Addresses in a disguised actor's pool.
pub const POOL: usize = 50;

impl Config {
    /// The full run of issue 4: 1,000 person sessions with think times of seconds.
    pub fn full(binary: PathBuf) -> Config {
        Config {
            sessions: 1000,
            people_at_once: 200,
            think_ms: (2000, 8000),
            bulk: 3,
            disguised: 2,
            rendering: 2,
            polite_secs: 120,
            budget: 300,
            bulk_at_once: 16,
            disguised_rate: 4.0,
            render_pause_ms: 800,
            binary,
            keep: None,
            seed: 1,
        }
    }

    /// The CI run: small, about a minute.
    pub fn small(binary: PathBuf) -> Config {
        Config {
            sessions: 40,
            people_at_once: 40,
            think_ms: (300, 1500),
            bulk: 1,
            disguised: 1,
            rendering: 1,
            polite_secs: 15,
            disguised_rate: 10.0,
            render_pause_ms: 200,
            ..Config::full(binary)
        }
    }

    pub fn check(&self) -> Result<(), String> {
        let bounds = [
            ("--sessions", self.sessions, 500_000),
            ("--bulk", self.bulk, 250),
            ("--disguised", self.disguised, 50),
            ("--rendering", self.rendering, 250),
            ("--budget", self.budget, 100_000),
        ];
        for (name, v, max) in bounds {
            if v > max {
                return Err(format!("{name} {v}: at most {max}"));
            }
        }
        if self.think_ms.0 > self.think_ms.1 {
            return Err(format!(
                "--think-ms {}..{}: MIN must not exceed MAX",
                self.think_ms.0, self.think_ms.1
            ));
        }
        if !(self.disguised_rate > 0.0 && self.disguised_rate <= 1000.0) {
            return Err(format!(
                "--disguised-rate {}: between 0 and 1000 requests per second",
                self.disguised_rate
            ));
        }
        if self.people_at_once == 0 || self.bulk_at_once == 0 {
            return Err("concurrency must be at least 1".into());
        }
        Ok(())
    }

    fn sizes(&self) -> String {
        format!(
            "{} person sessions ({} at once, think {}..{} ms), polite crawler {} s, {} bulk ({} in flight), \
             {} disguised ({POOL} addresses, {}/s), {} rendering ({} ms between pages); harvester budget {} requests; seed {}",
            self.sessions,
            self.people_at_once,
            self.think_ms.0,
            self.think_ms.1,
            self.polite_secs,
            self.bulk,
            self.bulk_at_once,
            self.disguised,
            self.disguised_rate,
            self.rendering,
            self.render_pause_ms,
            self.budget,
            self.seed
        )
    }

    /// A bound on the traffic phase (not a speed target): twice the expected length, plus a
    /// minute. Every actor stops there.
    fn deadline(&self) -> Duration {
        let rounds = self.sessions.div_ceil(self.people_at_once.max(1)) as f64;
        let people = rounds * (5.0 * self.think_ms.1 as f64 / 1000.0 + 5.0);
        let disguised = self.budget as f64 / self.disguised_rate;
        let rendering = self.budget as f64 / 3.0 * (self.render_pause_ms as f64 / 1000.0 + 0.5);
        let longest = [people, self.polite_secs as f64, disguised, rendering]
            .into_iter()
            .fold(0.0, f64::max);
        Duration::from_secs_f64(2.0 * longest + 60.0)
    }
}

// ---- Source addresses: every actor its own, spread over many /24s.

/// Person `i`: 127.10.x.y, 250 /24s filled one address at a time.
pub fn person_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        10 + (i / 62_500) as u8,
        (i % 250) as u8,
        (i / 250 % 250 + 1) as u8,
    )
}

pub const POLITE_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 30, 0, 1);

pub fn bulk_address(b: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 40, b as u8, 1)
}

/// Address `j` of disguised actor `a`: each of the pool's addresses in a /24 of its own.
pub fn disguised_address(a: usize, j: usize) -> Ipv4Addr {
    let g = a * POOL + j;
    Ipv4Addr::new(
        127,
        20 + (g / 250) as u8,
        (g % 250) as u8,
        (1 + g * 37 % 250) as u8,
    )
}

pub fn rendering_addresses(r: usize) -> Vec<Ipv4Addr> {
    vec![
        Ipv4Addr::new(127, 50, r as u8, 1),
        Ipv4Addr::new(127, 50, r as u8, 2),
    ]
}

// ---- The server under test.

/// Longest the server gets to answer /healthz after start, and to exit after SIGTERM.
const SERVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest the harness waits for the event store and the detector to stop changing.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server's config, data and log live: a temporary directory unless kept.
enum Workdir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Workdir {
    fn path(&self) -> &Path {
        match self {
            Workdir::Temp(t) => t.path(),
            Workdir::Kept(p) => p,
        }
    }
}

/// A running `faceprobe serve`; killed when dropped if it still runs.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (the server flushes its recorder), then SIGKILL if it has not exited in time.
    fn terminate(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let start = Instant::now();
        while start.elapsed() < SERVE_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

// ---- A run.

/// Runs the whole harness. `Err` when the harness itself cannot run (no binary, the server
/// does not start); the detector's absence is not an error here but a report that says so.
pub fn run(cfg: &Config) -> Result<Report, String> {
    cfg.check()?;
    if !cfg.binary.is_file() {
        return Err(format!(
            "faceprobe binary not found at {}: build it with `cargo build --release --bin faceprobe`, or pass --binary PATH",
            cfg.binary.display()
        ));
    }
    let workdir = match &cfg.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("--keep {}: {e}", dir.display()))?;
            Workdir::Kept(dir.clone())
        }
        None => {
            Workdir::Temp(tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?)
        }
    };
    let root = workdir.path();
    let data_dir = root.join("data");
    let config = root.join("faceprobe.toml");
    let public = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let data_text = data_dir
        .to_str()
        .ok_or_else(|| format!("{}: not UTF-8", data_dir.display()))?;
    std::fs::write(
        &config,
        format!(
            "[store]\ndata_dir = {data_text:?}\n\n[serve]\nmode = \"demo\"\nlisten = \"{public}\"\nadmin_listen = \"{admin}\"\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    let log = root.join("serve.log");
    let child = Command::new(&cfg.binary)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?)
        .spawn()
        .map_err(|e| format!("{}: {e}", cfg.binary.display()))?;
    let mut server = Server { child, log };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let origin: Arc<str> = Arc::from(public.to_string());
    rt.block_on(wait_healthy(&mut server, admin))?;
    let started = Instant::now();
    let actors = rt.block_on(drive(cfg, origin.clone()))?;
    let traffic_secs = started.elapsed().as_secs_f64();
    let ended = Instant::now();

    let db = data_dir.join("faceprobe.db");
    let answered = actors
        .iter()
        .flat_map(|a| &a.sent)
        .filter(|s| s.status.is_some())
        .count();
    let mut notes = Vec::new();
    if let Err(e) = wait_recorded(&db, answered) {
        notes.push(e);
    }
    let detection = wait_results(&cfg.binary, &config, &mut notes);
    let catch_up_secs = ended.elapsed().as_secs_f64();
    let events = read_events(&db)?;
    if let Ok(Some(status)) = server.child.try_wait() {
        notes.push(format!(
            "faceprobe serve exited ({status}) before the end of the run; its log ends: {}",
            last_lines(&strip_ansi(&server.log_text()), 5)
        ));
    }
    server.terminate();
    drop(rt);

    let (traffic, checks) = report::traffic(&actors, &events);
    let detection = detection.map(|rows| report::detect(&actors, &events, &rows));
    let data_dir = match &workdir {
        Workdir::Kept(_) => data_dir.display().to_string(),
        Workdir::Temp(_) => format!(
            "{} (removed at exit; --keep DIR keeps it)",
            data_dir.display()
        ),
    };
    Ok(Report {
        setup: Setup {
            origin: origin.to_string(),
            data_dir,
            sizes: cfg.sizes(),
            traffic_secs,
            catch_up_secs,
            notes,
        },
        actors: report::actor_lines(&actors),
        traffic,
        checks,
        detection,
    })
}

/// The log without its terminal colours.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" / ")
}

async fn wait_healthy(server: &mut Server, admin: SocketAddr) -> Result<(), String> {
    let admin: Arc<str> = Arc::from(admin.to_string());
    let net = Net::new(&admin, Ipv4Addr::LOCALHOST, &Log::default());
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "faceprobe serve exited ({status}) before it was healthy:\n{}",
                server.log_text()
            ));
        }
        if let Ok(got) = net.get("/healthz", &[]).await {
            if got.status == 200 {
                return Ok(());
            }
        }
        if start.elapsed() > SERVE_TIMEOUT {
            return Err(format!(
                "faceprobe serve did not answer http://{admin}/healthz within {SERVE_TIMEOUT:?}:\n{}",
                server.log_text()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs every profile at once; people start at a steady pace, `people_at_once` at most
/// browsing together.
async fn drive(cfg: &Config, origin: Arc<str>) -> Result<Vec<Actor>, String> {
    use tokio::time::Instant;
    let deadline = Instant::now() + cfg.deadline();
    let mut tasks: Vec<tokio::task::JoinHandle<Actor>> = Vec::new();
    let actor =
        |profile, name: String, addresses: Vec<Ipv4Addr>, agents: Vec<String>, log: Log| Actor {
            profile,
            name,
            addresses,
            agents,
            sent: log.take(),
        };

    for b in 0..cfg.bulk {
        let (origin, addr) = (origin.clone(), bulk_address(b));
        let library = agents::LIBRARIES[b % agents::LIBRARIES.len()];
        let (budget, at_once) = (cfg.budget, cfg.bulk_at_once);
        tasks.push(tokio::spawn(async move {
            let log = Log::default();
            profiles::bulk(
                Net::new(&origin, addr, &log),
                library,
                budget,
                at_once,
                deadline,
            )
            .await;
            actor(
                Profile::Bulk,
                format!("bulk#{b}"),
                vec![addr],
                vec![library.agent().into()],
                log,
            )
        }));
    }
    for a in 0..cfg.disguised {
        let origin = origin.clone();
        let (budget, rate, seed) = (
            cfg.budget,
            cfg.disguised_rate,
            cfg.seed ^ (0xD15 + a as u64),
        );
        tasks.push(tokio::spawn(async move {
            let log = Log::default();
            let pool: Vec<(Net, &'static str)> = (0..POOL)
                .map(|j| {
                    let agent = agents::DISGUISED_AGENTS[(a + j) % agents::DISGUISED_AGENTS.len()];
                    (Net::new(&origin, disguised_address(a, j), &log), agent)
                })
                .collect();
            let addresses = pool.iter().map(|(n, _)| n.addr).collect();
            let mut uas: Vec<String> = pool.iter().map(|(_, ua)| ua.to_string()).collect();
            uas.sort();
            uas.dedup();
            profiles::disguised(pool, budget, rate, seed, deadline).await;
            actor(
                Profile::Disguised,
                format!("disguised#{a}"),
                addresses,
                uas,
                log,
            )
        }));
    }
    for r in 0..cfg.rendering {
        let origin = origin.clone();
        let (budget, pause, seed) = (
            cfg.budget,
            cfg.render_pause_ms,
            cfg.seed ^ (0x7E4D + r as u64),
        );
        tasks.push(tokio::spawn(async move {
            let log = Log::default();
            let addresses = rendering_addresses(r);
            let nets = addresses
                .iter()
                .map(|a| Net::new(&origin, *a, &log))
                .collect();
            profiles::rendering(nets, budget, pause, seed, deadline).await;
            let ua = agents::RENDERING_BROWSER.ua.to_string();
            actor(
                Profile::Rendering,
                format!("rendering#{r}"),
                addresses,
                vec![ua],
                log,
            )
        }));
    }
    if cfg.polite_secs > 0 {
        let (origin, secs) = (origin.clone(), cfg.polite_secs);
        tasks.push(tokio::spawn(async move {
            let log = Log::default();
            profiles::polite(Net::new(&origin, POLITE_ADDRESS, &log), secs, deadline).await;
            actor(
                Profile::Polite,
                "polite".into(),
                vec![POLITE_ADDRESS],
                vec![agents::POLITE_UA.into()],
                log,
            )
        }));
    }

    // People: sessions start one after another at the pace that keeps `people_at_once` of
    // them browsing (a session lasts about 3 think times), never more.
    let at_once = Arc::new(tokio::sync::Semaphore::new(cfg.people_at_once));
    let session_ms = 3.0 * (cfg.think_ms.0 + cfg.think_ms.1) as f64 / 2.0 + 1000.0;
    let gap = Duration::from_secs_f64(session_ms / 1000.0 / cfg.people_at_once as f64);
    for i in 0..cfg.sessions {
        if Instant::now() >= deadline {
            break;
        }
        let Ok(permit) = at_once.clone().acquire_owned().await else {
            break;
        };
        let (origin, addr) = (origin.clone(), person_address(i));
        let browser = agents::BROWSERS[(i * 7 + cfg.seed as usize) % agents::BROWSERS.len()];
        let language = (i * 5 + cfg.seed as usize / 3) % agents::LANGUAGES.len();
        let (think, seed) = (cfg.think_ms, cfg.seed.wrapping_mul(1_000_003) ^ i as u64);
        tasks.push(tokio::spawn(async move {
            let log = Log::default();
            profiles::person(
                Net::new(&origin, addr, &log),
                browser,
                language,
                think,
                seed,
                deadline,
            )
            .await;
            drop(permit);
            actor(
                Profile::People,
                format!("person#{i}"),
                vec![addr],
                vec![browser.ua.into()],
                log,
            )
        }));
        tokio::time::sleep(gap).await;
    }

    let mut actors = Vec::with_capacity(tasks.len());
    for t in tasks {
        actors.push(t.await.map_err(|e| format!("a traffic task failed: {e}"))?);
    }
    Ok(actors)
}

fn open_db(db: &Path) -> Result<rusqlite::Connection, String> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("{}: {e}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| format!("{}: {e}", db.display()))?;
    Ok(conn)
}

/// Waits until the event store holds at least `answered` events and stops growing.
fn wait_recorded(db: &Path, answered: usize) -> Result<(), String> {
    let start = Instant::now();
    let mut last = None;
    loop {
        let n: Option<i64> = open_db(db).ok().and_then(|c| {
            c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
                .ok()
        });
        if let Some(n) = n {
            if n as usize >= answered && last == Some(n) {
                return Ok(());
            }
        }
        if start.elapsed() > CATCH_UP_TIMEOUT {
            return Err(format!(
                "the event store held {} events for {answered} answered requests after {CATCH_UP_TIMEOUT:?}",
                n.map_or("?".into(), |n| n.to_string())
            ));
        }
        last = n;
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn read_events(db: &Path) -> Result<Vec<Event>, String> {
    let conn = open_db(db)?;
    let mut stmt = conn
        .prepare("SELECT id, client_ip, client_key, path, kind FROM events ORDER BY id")
        .map_err(|e| format!("{}: {e}", db.display()))?;
    stmt.query_map([], |r| {
        Ok(Event {
            id: r.get(0)?,
            client_ip: r.get(1)?,
            client_key: r.get(2)?,
            path: r.get(3)?,
            kind: r.get(4)?,
        })
    })
    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
    .map_err(|e| format!("{}: events: {e}", db.display()))
}

/// `faceprobe clients --json`, parsed; a clear error when the command does not exist yet.
fn clients(binary: &Path, config: &Path) -> Result<(Vec<Row>, usize), String> {
    let out = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["clients", "--json"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if stderr.contains("unrecognized subcommand") {
            return Err(format!(
                "`faceprobe clients` does not exist in {}: the detector (issue 4) has not landed in this build, \
                 so there are no flags to score. ({})",
                binary.display(),
                stderr.lines().next().unwrap_or("").trim()
            ));
        }
        return Err(format!(
            "`faceprobe clients --json` failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    let mut bad = 0;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .as_ref()
            .and_then(Row::parse)
        {
            Some(r) => rows.push(r),
            None => bad += 1,
        }
    }
    if rows.is_empty() && bad > 0 {
        return Err(format!(
            "`faceprobe clients --json` printed {bad} lines and none is a JSON object with a \"key\": {}",
            stdout.lines().next().unwrap_or("")
        ));
    }
    Ok((rows, bad))
}

/// Polls `faceprobe clients --json` until two answers a second apart agree on every key's
/// level, history and request count (bounded by `CATCH_UP_TIMEOUT`).
fn wait_results(binary: &Path, config: &Path, notes: &mut Vec<String>) -> Result<Vec<Row>, String> {
    let start = Instant::now();
    let mut last: Option<String> = None;
    loop {
        let (rows, bad) = clients(binary, config)?;
        let print = fingerprint(&rows);
        if last.as_ref() == Some(&print) || start.elapsed() > CATCH_UP_TIMEOUT {
            if last.as_ref() != Some(&print) {
                notes.push(format!(
                    "the detector's results were still changing after {CATCH_UP_TIMEOUT:?}: scored as they were then"
                ));
            }
            if bad > 0 {
                notes.push(format!(
                    "{bad} lines of `faceprobe clients --json` were not rows and were skipped"
                ));
            }
            return Ok(rows);
        }
        last = Some(print);
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn fingerprint(rows: &[Row]) -> String {
    let mut keys: Vec<String> = rows.iter().map(Row::fingerprint).collect();
    keys.sort();
    keys.join("\n")
}
