//! Operating faceprobe: `db backup` taken while requests keep coming makes a copy that
//! `db check --file` accepts; every metric `/metrics` exports is documented in docs/deploy.md,
//! and every query of the Grafana dashboard under deploy/ names a metric `/metrics` exports;
//! the systemd unit under deploy/ is accepted by `systemd-analyze verify` and its sandbox
//! scores as documented (skipped with a notice where systemd-analyze is missing, unless
//! FACEPROBE_REQUIRE_TOOLS=1).

mod common;

use common::{http_agent, tool_available, Env};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DETECT_FAST: &str = "[detect]\npoll_ms = 50\npersist_secs = 1\n";

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn events(env: &Env) -> i64 {
    env.db()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_backup_taken_while_requests_come_passes_db_check() {
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", DETECT_FAST);
    let server = env.serve(addrs);
    // Four clients ask for pages, images and canaries without pause until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (stop, sent) = (stop.clone(), sent.clone());
            let base = server.url("");
            std::thread::spawn(move || {
                let agent = http_agent();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let path = match n % 3 {
                        0 => "/".to_string(),
                        1 => format!("/gallery/{}", 1 + (n + i) % 3),
                        _ => format!("/static/img/{}.jpg", 1 + (n + i) % 12),
                    };
                    if let Ok(page) = common::fetch(&agent, &format!("{base}{path}")) {
                        // Take the page's canary too, as a harvester would.
                        let (imgs, _) = common::img_and_link_urls(&page.text());
                        for src in imgs.iter().filter(|s| s.contains("/_fp/c/")).take(1) {
                            let _ = common::fetch(&agent, &format!("{base}{src}"));
                        }
                    }
                    n += 1;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    while events(&env) < 500 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the load did not reach 500 events:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = events(&env);
    let copy = env.path("backup.db");
    let out = env.run(&["db", "backup", copy.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent_during = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sent.load(Ordering::Relaxed) > sent_during,
        "requests kept being answered"
    );
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    assert!(
        text.contains("keep") && text.contains("secret.key"),
        "{text}"
    );
    let check = env.run(&["db", "check", "--file", copy.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{report}");
    assert!(
        report.contains("integrity: ok") && report.contains("hash chain: ok"),
        "{report}"
    );
    let copied: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(
        copied >= before && copied <= events(&env),
        "the copy holds the events of one moment during the load: {before} <= {copied}"
    );
    // A copy is checked as it is: one changed event is found.
    let conn = rusqlite::Connection::open(&copy).unwrap();
    conn.execute("UPDATE events SET path = '/changed' WHERE id = 10", [])
        .unwrap();
    drop(conn);
    let check = env.run(&["db", "check", "--file", copy.to_str().unwrap()]);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("BROKEN at event 10"));
    // The server went on; the data directory's own check passes too.
    let check = env.run(&["db", "check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let again = env.run(&["db", "backup", copy.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
}

/// The metric names in a text: every `faceprobe_…` word.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("faceprobe_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn every_metric_is_documented_and_every_dashboard_query_names_an_exported_one() {
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", DETECT_FAST);
    let _server = env.serve(addrs);
    let metrics = common::fetch(&http_agent(), &format!("http://{}/metrics", addrs.admin))
        .unwrap()
        .text();
    // Families (`# TYPE name kind`), and every series name they export.
    let mut families = BTreeSet::new();
    let mut series = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            series.insert(name.to_string());
        }
    }
    assert!(families.len() >= 20, "{metrics}");
    let guide = std::fs::read_to_string(repo("docs/deploy.md")).unwrap();
    let documented = metric_names(&guide);
    let missing: Vec<_> = families.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "docs/deploy.md does not document {missing:?}"
    );
    let stale: Vec<_> = documented
        .iter()
        .filter(|d| !families.contains(*d) && !series.contains(*d))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/deploy.md names metrics /metrics does not export: {stale:?}"
    );

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("deploy/grafana/faceprobe.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            queries.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            queries.push(q.to_string());
        }
    }
    assert!(queries.len() >= 15, "{queries:?}");
    for q in &queries {
        let names = metric_names(q);
        assert!(!names.is_empty(), "a query names no metric: {q}");
        for n in names {
            assert!(
                series.contains(&n),
                "the dashboard's query {q} names {n}, which /metrics does not export"
            );
        }
    }
}

#[test]
fn the_systemd_unit_is_accepted_and_sandboxed() {
    let Some(analyze) = tool_available("systemd-analyze", "apt-get install systemd") else {
        return;
    };
    let env = Env::new();
    // The unit as shipped, pointed at this build's binary (verify checks that it exists).
    let unit = std::fs::read_to_string(repo("deploy/systemd/faceprobe.service"))
        .unwrap()
        .replace("/usr/local/bin/faceprobe", env!("CARGO_BIN_EXE_faceprobe"));
    let file = env.path("faceprobe.service");
    std::fs::write(&file, unit).unwrap();
    let out = std::process::Command::new(&analyze)
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let out = std::process::Command::new(&analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("faceprobe.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // docs/deploy.md states the score; 2.0 or less is what systemd calls "OK".
    assert!(score <= 2.0, "exposure {score}:\n{text}");
    let guide = std::fs::read_to_string(repo("docs/deploy.md")).unwrap();
    assert!(
        guide.contains(&format!("exposure level {score:.1}")),
        "docs/deploy.md states another score than {score:.1}"
    );
}
