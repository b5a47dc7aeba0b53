//! The fleet, end to end. Replicas sharing a deployment secret serve each other's canaries
//! (sealed tokens: no lookup, no shared store); a forged token, or one of another deployment,
//! is refused with 404 and recorded. Then three replicas behind Debian's nginx (round-robin)
//! ship to a real PostgreSQL (Debian's, started here in a temporary directory on a loopback
//! port): a scraper's every canary fetch is recorded whichever replica planted it; PostgreSQL
//! is stopped mid-run and started again, and the central store ends with exactly what the
//! three local stores hold, nothing lost or doubled; the fleet detector flags the scraper
//! once, as one actor, across the three; each instance's chain checks in the central store.
//!
//! The PostgreSQL and nginx part is skipped with a notice when they are missing, unless
//! FACEPROBE_REQUIRE_TOOLS=1 (set by scripts/test, which installs them).

mod common;

use common::{free_port, img_and_link_urls, tool_available, Env, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRAPER: &str = "img2dataset/1.5.0 (+https://github.com/rom1504/img2dataset)";
const SCRAPER_IP: [u8; 4] = [127, 0, 0, 3];
const ADMIN_TOKEN: &str = "fleet-test-admin-token-0123456789";

fn get(to: SocketAddr, path: &str) -> common::Fetched {
    common::get_from(SCRAPER_IP.into(), to, path, &[("user-agent", SCRAPER)])
}

/// A replica in demo mode sharing `secret` (a file), named `instance`; `more` goes after.
fn replica(secret: &Path, instance: &str, more: &str) -> (Env, common::ServeAddrs) {
    let env = Env::new();
    let addrs = env.configure_serve(
        "mode = \"demo\"",
        &format!(
            "[fleet]\ninstance = \"{instance}\"\nsite = \"photos\"\n{more}\n\
             [detect]\npoll_ms = 50\npersist_secs = 1\n\n[review]\ntoken = \"{ADMIN_TOKEN}\"\n"
        ),
    );
    // The secret file goes in [store], which configure_serve wrote first.
    let text = std::fs::read_to_string(&env.config).unwrap().replacen(
        "[store]\n",
        &format!("[store]\nsecret_file = {:?}\n", secret.to_str().unwrap()),
        1,
    );
    std::fs::write(&env.config, text).unwrap();
    (env, addrs)
}

fn secret_file(dir: &Path, byte: u8) -> PathBuf {
    let path = dir.join(format!("secret-{byte}.key"));
    std::fs::write(&path, [byte; 32]).unwrap();
    path
}

/// The canary image URLs (`/_fp/c/…`) of a page.
fn canaries_of(html: &str) -> Vec<String> {
    img_and_link_urls(html)
        .0
        .into_iter()
        .filter(|u| u.starts_with("/_fp/c/"))
        .collect()
}

#[test]
fn a_replica_serves_and_records_the_canary_another_planted_and_refuses_forged_ones() {
    let shared = tempfile::tempdir().unwrap();
    let secret = secret_file(shared.path(), 7);
    let (env_a, addrs_a) = replica(&secret, "pod-a", "");
    let (env_b, addrs_b) = replica(&secret, "pod-b", "");
    let other = secret_file(shared.path(), 8);
    let (env_x, addrs_x) = replica(&other, "elsewhere", "");
    let a = env_a.serve(addrs_a);
    let b = env_b.serve(addrs_b);
    let x = env_x.serve(addrs_x);
    let page = get(a.addrs.public, "/");
    assert_eq!(page.status, 200);
    let canary = canaries_of(&page.text())
        .pop()
        .expect("a canary in the page");
    let token = common::canary_token(&format!("http://h{canary}")).unwrap();
    assert_eq!(token.len(), 64, "a sealed token: {token}");

    // Replica B never saw the page, and shares no store with A.
    let image = get(b.addrs.public, &canary);
    assert_eq!(image.status, 200, "{}", b.log_text());
    assert!(common::is_whole_jpeg(&image.body));
    let (status, owner): (i64, String) = env_b
        .db()
        .query_row(
            "SELECT e.status, t.client_key FROM events e JOIN tokens t ON t.token = e.token
             WHERE e.token = ?1",
            [common::token_bytes(&token)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, 200);
    // A's page view (and the token it minted) is committed with the writer's next batch.
    let mut minted_for = String::new();
    wait_until(
        "A records the token it planted",
        Duration::from_secs(10),
        || {
            env_a
                .db()
                .query_row(
                    "SELECT client_key FROM tokens WHERE token = ?1",
                    [common::token_bytes(&token)],
                    |r| r.get(0),
                )
                .map(|k| minted_for = k)
                .is_ok()
        },
    );
    assert_eq!(
        owner, minted_for,
        "B attributes the fetch to the client A planted it for"
    );

    // One character changed: refused, and the attempt is in the record.
    let mut forged = token.clone().into_bytes();
    forged[40] = if forged[40] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let refused = get(b.addrs.public, &format!("/_fp/c/{forged}.jpg"));
    assert_eq!(refused.status, 404);
    // Another deployment (another secret) does not serve this one's tokens.
    assert_eq!(get(x.addrs.public, &canary).status, 404);
    for (env, t) in [(&env_b, &forged), (&env_x, &token)] {
        // Recorded with the next commit of the writer, not awaited by the answer.
        wait_until(
            &format!("the refused fetch of {t} is recorded"),
            Duration::from_secs(10),
            || {
                env.db()
                    .query_row(
                        "SELECT count(*) FROM events
                         WHERE token = ?1 AND status = 404 AND kind = 'canary'",
                        [common::token_bytes(t)],
                        |r| r.get::<_, i64>(0),
                    )
                    .unwrap()
                    == 1
            },
        );
    }
    drop((a, b, x));
}

// ---- PostgreSQL and nginx.

/// Debian's PostgreSQL server, run from a temporary directory on a free loopback port (as the
/// `postgres` user when the test runs as root: initdb refuses root).
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Postgres {
    fn find() -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").is_file())
            .collect();
        found.sort();
        found.pop()
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        cmd.args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn start_new() -> Option<Postgres> {
        let Some(bin) = Postgres::find() else {
            assert!(
                std::env::var("FACEPROBE_REQUIRE_TOOLS").is_err(),
                "PostgreSQL is required (Debian: postgresql)"
            );
            eprintln!("PostgreSQL not installed: skipping (scripts/test installs it: postgresql)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let pg = Postgres {
            bin,
            dir,
            port: free_port(),
        };
        let data = pg.data();
        let o = pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "faceprobe",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        pg.start();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_string()
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let o = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn stop(&self) {
        let o = self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
        assert!(
            o.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://faceprobe@127.0.0.1:{}/postgres", self.port)
    }

    fn query(&self, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-d", &self.url(), "-c", sql])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// Debian's nginx, round-robin over `upstreams`, passing the client's address on.
struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    fn start(binary: &Path, dir: &Path, upstreams: &[SocketAddr]) -> Nginx {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let temp = dir.join("nginx-temp");
        std::fs::create_dir_all(&temp).unwrap();
        // SAFETY: geteuid(2) has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let servers: String = upstreams.iter().map(|u| format!("server {u}; ")).collect();
        let conf = format!(
            "{user}\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx-error.log info;\nevents {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n\
             proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n\
             uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
             upstream replicas {{ {servers} }}\n\
             server {{\n    listen {addr};\n    location / {{\n\
             proxy_pass http://replicas;\n      proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $remote_addr;\n    }}\n  }}\n}}\n",
            d = dir.display(),
            t = temp.display(),
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("nginx-stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut nginx = Nginx { child, addr };
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(nginx.child.try_wait().unwrap().is_none(), "nginx exited");
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nginx did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn local_events(env: &Env) -> (i64, i64) {
    env.db()
        .query_row(
            "SELECT count(*), coalesce(max(id), 0) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[test]
fn three_replicas_behind_nginx_ship_everything_once_through_an_outage_and_flag_one_actor() {
    let Some(nginx_bin) = tool_available("nginx", "Debian: nginx")
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
    else {
        return;
    };
    let Some(pg) = Postgres::start_new() else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let secret = secret_file(shared.path(), 9);
    let (hook_port, hooks) = common::webhook_receiver();
    let fleet = format!(
        "postgres = \"{}\"\ndetect_interval_secs = 1\ninterval_ms = 50\ntimeout_secs = 2\n\
         [alert]\nwebhooks = [\"http://127.0.0.1:{hook_port}/hook\"]\nsecret = \"fleet-hook\"\n",
        pg.url()
    );
    let names = ["pod-a", "pod-b", "pod-c"];
    let mut replicas: Vec<(Env, Server)> = names
        .iter()
        .map(|name| {
            let (env, addrs) = replica(&secret, name, &fleet);
            let server = env.serve(addrs);
            (env, server)
        })
        .collect();
    let upstreams: Vec<SocketAddr> = replicas.iter().map(|(_, s)| s.addrs.public).collect();
    let nginx = Nginx::start(&nginx_bin, shared.path(), &upstreams);

    // The scraper: pages through nginx, then every canary of each page, also through nginx
    // (round-robin: most are served by another replica than the one that planted them).
    let mut fetched = 0;
    let mut taken: Option<(String, Vec<u8>)> = None;
    let mut round = |n: usize| {
        for _ in 0..n {
            let page = get(nginx.addr, "/");
            assert_eq!(page.status, 200);
            for c in canaries_of(&page.text()) {
                let image = get(nginx.addr, &c);
                assert_eq!(image.status, 200, "canary {c} through nginx");
                fetched += 1;
                if taken.is_none() {
                    let token = common::canary_token(&format!("http://h{c}")).unwrap();
                    taken = Some((token, image.body));
                }
            }
        }
    };
    round(6);
    pg.stop();
    round(6);
    std::thread::sleep(Duration::from_secs(1));
    pg.start();
    round(3);
    assert!(fetched >= 15, "{fetched} canaries");

    // Every local event reaches the central store exactly once.
    let local: Vec<(i64, i64)> = replicas.iter().map(|(e, _)| local_events(e)).collect();
    wait_until(
        "the central store catches up",
        Duration::from_secs(60),
        || {
            names.iter().zip(&local).all(|(name, (count, max))| {
            pg.query(&format!(
                "SELECT count(*) || ' ' || coalesce(max(id), 0) FROM events WHERE instance = '{name}'"
            )) == format!("{count} {max}")
        })
        },
    );
    let canaries: i64 = pg
        .query("SELECT count(*) FROM events WHERE kind = 'canary' AND status = 200")
        .parse()
        .unwrap();
    assert_eq!(
        canaries, fetched,
        "every canary fetch, whichever replica served it"
    );
    let crossed: i64 = pg
        .query(
            "SELECT count(*) FROM events e JOIN tokens t
                 ON t.token = e.token AND t.minting_event IS NOT NULL
             WHERE e.kind = 'canary' AND e.status = 200 AND t.instance <> e.instance",
        )
        .parse()
        .unwrap();
    assert!(
        crossed > 0,
        "some canaries were planted by one replica and fetched through another"
    );
    let unhashed: i64 = pg
        .query(
            "SELECT count(DISTINCT e.token) FROM events e WHERE e.kind = 'canary'
             AND e.status = 200 AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.token = e.token
                 AND t.instance = e.instance AND t.phash IS NOT NULL)",
        )
        .parse()
        .unwrap();
    assert_eq!(
        unhashed, 0,
        "each fetched canary's hashes are in the central store"
    );

    // One actor, flagged once, across the three replicas.
    wait_until(
        "the fleet detector flags the scraper",
        Duration::from_secs(30),
        || {
            pg.query("SELECT count(*) FROM fleet_flags WHERE level = 'harvester' AND cardinality(instances) = 3")
            == "1"
        },
    );
    assert_eq!(pg.query("SELECT count(*) FROM fleet_flags"), "1");
    let (env_a, _) = &replicas[0];
    let out = env_a.run(&["clients", "--fleet", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flags: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0]["level"], "harvester");
    assert_eq!(flags[0]["instances"].as_array().unwrap().len(), 3);
    assert!(flags[0]["reasons"]
        .as_str()
        .unwrap()
        .contains("through another"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("127.0.0.3"),
        "no raw address leaves an instance: {text}"
    );
    assert_eq!(
        pg.query(
            "SELECT count(*) FROM events WHERE host LIKE '%127.0.0.3%' OR actor LIKE '%127.0.0.3%'"
        ),
        "0"
    );

    // The fleet's flag went to the alert webhook, once, from whichever replica ran the
    // detector (the replicas also send their own flags there).
    let actor = flags[0]["actor"].as_str().unwrap().to_string();
    let mut fleet_alerts = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && fleet_alerts.is_empty() {
        while let Ok((_, body)) = hooks.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["flag"]["kind"] == "fleet" {
                fleet_alerts.push(v);
            }
        }
    }
    assert_eq!(fleet_alerts.len(), 1, "{fleet_alerts:?}");
    assert_eq!(fleet_alerts[0]["flag"]["key"], actor.as_str());
    assert_eq!(fleet_alerts[0]["flag"]["level"], "harvester");
    // As it was when it reached harvester (replicas that had shipped by then), all ours.
    let alerted: Vec<&str> = fleet_alerts[0]["flag"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        !alerted.is_empty() && alerted.iter().all(|i| names.contains(i)),
        "{alerted:?}"
    );

    // The dashboard of any replica shows the fleet's flag.
    let admin = replicas[1].1.addrs.admin;
    let agent = common::http_agent();
    let login = agent
        .post(&format!("http://{admin}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("name=tester&token={ADMIN_TOKEN}&next=%2Ffleet"))
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("fp_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    let mut page = agent
        .get(&format!("http://{admin}/fleet"))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.body_mut().read_to_string().unwrap();
    let actor = flags[0]["actor"].as_str().unwrap();
    for shown in [
        actor,
        "pod-a",
        "pod-b",
        "pod-c",
        "harvester",
        "through another",
    ] {
        assert!(
            html.contains(shown),
            "the fleet page shows {shown}:\n{html}"
        );
    }

    // Each instance's chain checks in the central store.
    let check = env_a.run(&["db", "check", "--fleet"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(text.matches("hash chain intact").count(), 3, "{text}");

    // An image found elsewhere, resized and re-encoded, is traced from any machine that can
    // reach the fleet store (here one with no store of its own) to the fetch that took it.
    let (token, body) = taken.expect("a canary taken");
    let found = image::load_from_memory(&body)
        .unwrap()
        .resize_exact(180, 180, image::imageops::FilterType::Lanczos3)
        .to_rgb8();
    let file = shared.path().join("found.jpg");
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 70)
        .encode_image(&found)
        .unwrap();
    std::fs::write(&file, jpeg).unwrap();
    let outsider = Env::new();
    std::fs::write(
        &outsider.config,
        format!(
            "[store]\ndata_dir = {:?}\n[fleet]\npostgres = \"{}\"\n",
            outsider.data_dir().to_str().unwrap(),
            pg.url()
        ),
    )
    .unwrap();
    let out = outsider.run(&["match", "--fleet", "--json", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let matches = result["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{result}");
    assert_eq!(matches[0]["token"], token.as_str());
    assert_eq!(
        matches[0]["how"], "hash",
        "found by its pixels, not its marks: {result}"
    );
    let fetches = matches[0]["fetches"].as_array().unwrap();
    assert_eq!(fetches.len(), 1, "{result}");
    assert_eq!(fetches[0]["status"], 200);
    assert!(names.contains(&fetches[0]["instance"].as_str().unwrap()));
    assert_eq!(fetches[0]["site"], "photos");

    // Evidence from the central store. The replicas stop (each signs its chain head and
    // ships it); a bundle of the actor built from the fleet store alone, on a machine with no
    // store of its own, holds each replica's chain segment and signed checkpoints, and both
    // checkers verify it.
    drop(nginx);
    for (_, server) in &mut replicas {
        assert!(server.terminate().success());
    }
    let bundle = shared.path().join("fleet-case.zip");
    let out = outsider.run(&[
        "evidence",
        "build",
        "--fleet",
        actor,
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "evidence build --fleet: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("on 3 instances"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let files = unzip(&bundle);
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["format"], "faceprobe-fleet-evidence-v1");
    assert_eq!(manifest["actor"]["key"], actor);
    let mut events_in_bundle = 0;
    for name in names {
        let events =
            String::from_utf8_lossy(&files[&format!("instances/{name}/events.jsonl")]).to_string();
        for line in events.lines() {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                e["client_ip"].is_null(),
                "addresses stay on the instances: {line}"
            );
            assert!(e["ip_commit"].is_string(), "{line}");
            events_in_bundle += 1;
        }
        let key = String::from_utf8_lossy(&files[&format!("instances/{name}/faceprobe-key.pub")])
            .to_string();
        let shipped = pg.query(&format!(
            "SELECT public_key FROM instances WHERE instance = '{name}'"
        ));
        assert_eq!(
            key.trim(),
            shipped.trim(),
            "{name}'s own key checks its checkpoints"
        );
    }
    let scraper_events: i64 = pg
        .query(&format!(
            "SELECT count(*) FROM events WHERE actor = '{actor}'"
        ))
        .parse()
        .unwrap();
    assert_eq!(
        events_in_bundle, scraper_events,
        "every event of the actor, once"
    );
    for (path, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains("127.0.0.3"),
            "{path} names the scraper's address"
        );
    }
    let verify = outsider.run(&["evidence", "verify", bundle.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(verify.status.success(), "evidence verify:\n{text}");
    for name in names {
        assert!(
            text.contains(&format!("ok   instance {name}: checkpoints.jsonl")),
            "{text}"
        );
        assert!(
            text.contains(&format!("ok   instance {name}: chain.jsonl")),
            "{text}"
        );
    }
    let python = tool_available("python3", "Debian: python3").is_some();
    let checker = shared.path().join("verify.py");
    std::fs::write(&checker, &files["verify.py"]).unwrap();
    if python {
        let o = std::process::Command::new("python3")
            .arg(&checker)
            .arg(&bundle)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "verify.py:\n{text}");
        assert!(text.contains("RESULT: OK"), "{text}");
    }
    // One event of one instance altered in the bundle: both checkers name the instance.
    let mut tampered = files.clone();
    let path = "instances/pod-b/events.jsonl".to_string();
    let altered = String::from_utf8_lossy(&tampered[&path]).replacen("\"GET\"", "\"PUT\"", 1);
    tampered.insert(path, altered.into_bytes());
    let forged = shared.path().join("forged.zip");
    rezip(&bundle, &tampered, &forged);
    let verify = outsider.run(&["evidence", "verify", forged.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(!verify.status.success(), "{text}");
    assert!(text.contains("FAIL instance pod-b: "), "{text}");
    if python {
        let o = std::process::Command::new("python3")
            .arg(&checker)
            .arg(&forged)
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }

    // A tampered row is found.
    pg.query("UPDATE events SET path = '/elsewhere' WHERE instance = 'pod-b' AND id = 2");
    let check = outsider.run(&["db", "check", "--fleet"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{text}");
    assert!(text.contains("pod-b") && text.contains("BROKEN"), "{text}");
}

/// The files of a bundle's zip, by their path inside its folder.
fn unzip(zip: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().split_once('/').unwrap().1.to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

/// Writes `files` as a zip at `out`, in the folder of the bundle `like`.
fn rezip(like: &Path, files: &std::collections::BTreeMap<String, Vec<u8>>, out: &Path) {
    use std::io::Write;
    let folder = {
        let mut archive = zip::ZipArchive::new(std::fs::File::open(like).unwrap()).unwrap();
        let first = archive.by_index(0).unwrap().name().to_string();
        first.split_once('/').unwrap().0.to_string()
    };
    let mut w = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    for (name, bytes) in files {
        w.start_file(
            format!("{folder}/{name}"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap();
}

/// The fleet figures of docs/performance.md, run by scripts/bench-fleet on a release build
/// (ignored by `cargo test`): the request path's throughput with shipping off and on (wrk, side
/// by side in one run), events shipped per second by one instance and by three at once while
/// they catch up a backlog, and the delay from a local commit to the central store.
#[test]
#[ignore]
fn bench_fleet() {
    let wrk = tool_available("wrk", "Debian: wrk").expect("wrk");
    let pg = Postgres::start_new().expect("PostgreSQL");
    let seconds: u64 = std::env::var("FACEPROBE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let shared = tempfile::tempdir().unwrap();
    let secret = secret_file(shared.path(), 11);
    let load = |addr: SocketAddr| -> f64 {
        let o = Command::new(&wrk)
            .args(["-t2", "-c32", &format!("-d{seconds}s")])
            .arg(format!("http://{addr}/"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("wrk: {text}"))
    };
    // Back within a second of PostgreSQL's return (the backoff is at most timeout_secs).
    let fleet_keys = format!("postgres = \"{}\"\ntimeout_secs = 1\n", pg.url());
    let fleet = |_: &str| fleet_keys.clone();
    // Shipping off, then on: the same page, one run after the other.
    let (env_off, addrs) = replica(&secret, "off", "");
    let off = env_off.serve(addrs);
    let rps_off = load(off.addrs.public);
    drop(off);
    let (env_on, addrs) = replica(&secret, "on", &fleet("on"));
    let on = env_on.serve(addrs);
    let rps_on = load(on.addrs.public);
    // The local count is read again each time: the recorder may still be committing the
    // last requests' events when wrk ends.
    wait_until("shipping catches up", Duration::from_secs(600), || {
        pg.query("SELECT count(*) FROM events WHERE instance = 'on'")
            == local_events(&env_on).0.to_string()
    });
    let delay = pg.query(
        "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY received_ms - ts_ms))
             || ' ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY received_ms - ts_ms))
         FROM events WHERE instance = 'on'",
    );
    drop(on);
    println!(
        "fleet: request path {rps_off:.0} req/s with shipping off, {rps_on:.0} req/s on ({:+.1} %)",
        (rps_on / rps_off - 1.0) * 100.0
    );
    println!("fleet: delay from local commit to the central store under load, median and p99 (ms): {delay}");

    // Catching up: a backlog made while PostgreSQL is away, then timed as it drains.
    for n in [1usize, 3] {
        pg.stop();
        let names: Vec<String> = (0..n).map(|i| format!("drain{n}-{i}")).collect();
        let servers: Vec<(Env, Server)> = names
            .iter()
            .map(|name| {
                let (env, addrs) = replica(&secret, name, &fleet(name));
                let s = env.serve(addrs);
                (env, s)
            })
            .collect();
        std::thread::scope(|s| {
            for (_, server) in &servers {
                s.spawn(|| load(server.addrs.public));
            }
        });
        let started = Instant::now();
        pg.start();
        let like = format!("drain{n}-%");
        let mut total = 0;
        wait_until("the backlog drains", Duration::from_secs(900), || {
            total = servers.iter().map(|(e, _)| local_events(e).0).sum();
            pg.query(&format!(
                "SELECT count(*) FROM events WHERE instance LIKE '{like}'"
            )) == total.to_string()
        });
        let secs = started.elapsed().as_secs_f64();
        println!(
            "fleet: {n} instance(s) shipped a backlog of {total} events in {secs:.1} s: {:.0} events/s in all, {:.0} per instance",
            total as f64 / secs,
            total as f64 / secs / n as f64
        );
        drop(servers);
    }
}
