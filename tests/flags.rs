//! Detection through the real server: a harvester is flagged with reasons that name real
//! events, a signed webhook goes out, its addresses are held, and a person can dismiss it;
//! a person browsing is never flagged.

mod common;

use common::{canary_token, clients_json, http_agent, webhook_receiver as receiver, Env};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, Instant};

const DETECT_FAST: &str = "[detect]\npoll_ms = 50\npersist_secs = 1\n";

/// Waits (at most 30 s) until `faceprobe clients --json` satisfies `done`.
fn wait_for_clients(
    env: &Env,
    flagged: bool,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let list = clients_json(env, flagged);
        if done(&list) || start.elapsed() > Duration::from_secs(30) {
            return list;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_harvester_is_flagged_alerted_held_and_can_be_dismissed() {
    let env = Env::new();
    let (port, hooks) = receiver();
    let addrs = env.configure_serve(
        "mode = \"demo\"",
        &format!(
            "{DETECT_FAST}\n[alert]\nwebhooks = [\"http://127.0.0.1:{port}/hook\"]\nsecret = \"s3cret\"\nlevel = \"harvester\"\n"
        ),
    );
    let server = env.serve(addrs);
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent("python-requests/2.31.0")
            .build(),
    );
    for _ in 0..3 {
        let page = agent
            .get(&server.url("/"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let (imgs, _) = common::img_and_link_urls(&page);
        let canary = imgs.iter().find(|u| canary_token(u).is_some()).unwrap();
        let r = agent.get(&server.url(canary)).call().unwrap();
        assert_eq!(r.status(), 200);
    }
    let _ = agent.get(&server.url("/private/")).call().unwrap();

    let list = wait_for_clients(&env, true, |l| {
        l.iter()
            .any(|c| c["level"] == "harvester" && c["counts"]["requests"] == 7)
    });
    let h = list
        .iter()
        .find(|c| c["level"] == "harvester")
        .unwrap_or_else(|| panic!("no harvester in {list:?}\n{}", server.log_text()));
    let key = h["key"].as_str().unwrap().to_string();
    assert_eq!(h["kind"], "client");
    assert_eq!(h["address"], "127.0.0.1");
    assert_eq!(h["agent"], "python-requests/2.31.0");
    assert_eq!(h["crawler"], "scraper");
    assert_eq!(h["counts"]["canaries"], 3);
    let levels: Vec<&str> = h["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["watch", "suspect", "harvester"]);

    // Every reason names events that are in the store, of this client.
    let db = env.db();
    let canary = h["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["signal"] == "canary_fetched")
        .expect("canary_fetched reason");
    assert_eq!(canary["count"], 3);
    for id in canary["events"].as_array().unwrap() {
        let (kind, client): (String, String) = db
            .query_row(
                "SELECT kind, client_key FROM events WHERE id = ?1",
                [id.as_i64().unwrap()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((kind.as_str(), client.as_str()), ("canary", key.as_str()));
    }
    let robots = h["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["signal"] == "robots_disallowed")
        .expect("robots_disallowed reason");
    assert_eq!(robots["count"], 4, "three canaries and /private/");

    // The raw addresses are held past the privacy window.
    let held = |key: &str| -> i64 {
        db.query_row(
            "SELECT COUNT(*) FROM holds WHERE client_key = ?1",
            [key],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(held(&key), 1);

    // One signed webhook call.
    let (headers, body) = hooks
        .recv_timeout(Duration::from_secs(30))
        .expect("a webhook call");
    let sig = headers
        .iter()
        .find(|(k, _)| k == "x-faceprobe-signature")
        .map(|(_, v)| v.clone())
        .expect("signature header");
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
    let alert: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alert["type"], "flag");
    assert_eq!(alert["flag"]["key"], key.as_str());
    assert_eq!(alert["flag"]["level"], "harvester");

    // A person dismisses it: off the flagged list, no longer held, and the history says so.
    let out = env.run(&["clients", "dismiss", &key, "--note", "our own link checker"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&["clients", "dismiss", "c:nosuchclient"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("faceprobe clients"));
    let _ = agent.get(&server.url("/private/")).call().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(clients_json(&env, true)
        .iter()
        .all(|c| c["key"] != key.as_str()));
    let all = clients_json(&env, false);
    let dismissed = all.iter().find(|c| c["key"] == key.as_str()).unwrap();
    assert_eq!(dismissed["dismissed"], true);
    assert_eq!(held(&key), 0);
    let history = env.run(&["clients", "history", &key]);
    let history = String::from_utf8_lossy(&history.stdout);
    assert!(
        history.contains("harvester") && history.contains("our own link checker"),
        "{history}"
    );
}

#[test]
fn a_person_browsing_in_a_browser_is_not_flagged() {
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", DETECT_FAST);
    let server = env.serve(addrs);
    let agent = http_agent();
    let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
    let get = |path: &str, dest: &str, referer: Option<&str>| {
        let mut req = agent
            .get(&server.url(path))
            .header("User-Agent", ua)
            .header(
                "Accept",
                if dest == "document" {
                    "text/html,application/xhtml+xml,*/*;q=0.8"
                } else {
                    "*/*"
                },
            )
            .header("Accept-Language", "fr-FR,fr;q=0.9,en;q=0.5")
            .header("Sec-Fetch-Dest", dest)
            .header(
                "Sec-Fetch-Mode",
                if dest == "document" {
                    "navigate"
                } else {
                    "no-cors"
                },
            )
            .header(
                "Sec-Fetch-Site",
                if referer.is_some() {
                    "same-origin"
                } else {
                    "none"
                },
            );
        if let Some(r) = referer {
            req = req.header("Referer", &server.url(r));
        }
        let mut r = req.call().unwrap();
        let _ = r.body_mut().read_to_vec();
        assert_eq!(r.status(), 200, "{path}");
    };
    let mut requests = 0;
    for page in [
        "/",
        "/gallery/1",
        "/gallery/2",
        "/gallery/3",
        "/about",
        "/gallery/1",
    ] {
        get(page, "document", Some("/"));
        get("/static/site.css", "style", Some(page));
        get("/static/site.js", "script", Some(page));
        requests += 3;
        if let Some(g) = page.strip_prefix("/gallery/") {
            let g: usize = g.parse().unwrap();
            for i in 1..=4 {
                get(
                    &format!("/static/img/{}.jpg", (g - 1) * 4 + i),
                    "image",
                    Some(page),
                );
                requests += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // Wait until the detector has read every event, then look.
    let admin = format!("http://{}/metrics", addrs.admin);
    let start = Instant::now();
    loop {
        let text = common::fetch(&agent, &admin).unwrap().text();
        let seen: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("faceprobe_detect_events_total "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if seen >= requests || start.elapsed() > Duration::from_secs(30) {
            assert!(seen >= requests, "detector saw {seen} of {requests}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let list = clients_json(&env, false);
    assert!(
        list.iter()
            .all(|c| c["level"].is_null() && c["score"].as_f64() == Some(0.0)),
        "a person was noticed: {list:?}"
    );
}
