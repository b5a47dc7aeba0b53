//! A full disk: the store on a small tmpfs that a filler file fills up while a harvester walks
//! the site. Pages go on being served; a canary whose fetch cannot be committed is refused with
//! 503 rather than sent unrecorded; `/metrics` and the log say why; once space returns,
//! canaries are served and recorded again, and the store checks out.
//!
//! Mounting a tmpfs needs root (scripts/test runs as root, as CI does); elsewhere the test says
//! it is skipped (and fails when FACEPROBE_REQUIRE_TOOLS is set).

mod common;

use common::{canary_token, fetch, http_agent, img_and_link_urls, same_origin, Env};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The tmpfs the store lives on: room for the store at start, little more.
const TMPFS_SIZE: &str = "24m";
/// Bounds on each phase.
const PHASE: Duration = Duration::from_secs(60);

/// A tmpfs mounted on a directory of the test's own, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
            assert!(
                std::env::var("FACEPROBE_REQUIRE_TOOLS").is_err(),
                "mounting a tmpfs failed (scripts/test runs as root): {why}"
            );
            eprintln!("cannot mount a tmpfs here ({why}): skipping (run as root)");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a server killed by a failed assertion may still hold files on it.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                break;
            }
        }
    }
    // What is left of a block (a partial write may have left a few bytes).
    let _ = f.write(&block[..1]);
    written
}

/// A metric's value from `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

/// One page view of the demo site's home page: its status and its canary image URLs.
fn page_canaries(agent: &ureq::Agent, base: &str) -> (u16, Vec<String>) {
    let page_url = format!("{base}/");
    let page = fetch(agent, &page_url).expect("the page");
    let (imgs, _) = img_and_link_urls(&page.text());
    let canaries = imgs
        .iter()
        .filter_map(|i| same_origin(&page_url, i))
        .filter(|u| canary_token(u).is_some())
        .collect();
    (page.status, canaries)
}

#[test]
fn a_full_disk_refuses_canaries_keeps_serving_pages_and_recovers() {
    let env = Env::new();
    let Some(_tmpfs) = Tmpfs::mount(&env.data_dir()) else {
        return;
    };
    let addrs = env.configure_serve(
        "mode = \"demo\"",
        "[detect]\nenabled = false\n\n[log]\nlevel = \"info\"\n",
    );
    let mut server = env.serve(addrs);
    let agent = http_agent();
    let base = server.url("");
    let metrics_url = format!("http://{}/metrics", addrs.admin);

    // Space at first: a canary is served and recorded.
    let (status, canaries) = page_canaries(&agent, &base);
    assert_eq!(status, 200);
    assert!(!canaries.is_empty(), "the demo page carries canaries");
    assert_eq!(fetch(&agent, &canaries[0]).unwrap().status, 200);

    // The disk fills up.
    let filler = env.data_dir().join("filler");
    let filled = fill(&filler);
    eprintln!("filler: {} MB; the disk is full", filled >> 20);

    // A harvester goes on: every page is served; canaries are refused with 503 once the WAL's
    // room is used up, and none is served that is not committed.
    let started = Instant::now();
    let (mut pages, mut served, mut refused) = (0usize, Vec::new(), 0usize);
    while refused < 20 {
        assert!(
            started.elapsed() < PHASE,
            "no canary refused after {pages} pages ({} canaries served)\n{}",
            served.len(),
            server.log_text()
        );
        let (status, canaries) = page_canaries(&agent, &base);
        assert_eq!(status, 200, "a page while the disk is full");
        pages += 1;
        for c in canaries {
            let r = fetch(&agent, &c).unwrap();
            match r.status {
                200 => served.push(canary_token(&c).unwrap()),
                503 => refused += 1,
                other => panic!("{c}: {other} while the disk is full"),
            }
        }
    }
    let m = fetch(&agent, &metrics_url).unwrap().text();
    let write_errors = metric(&m, "faceprobe_write_errors_total");
    assert!(write_errors >= 1.0, "write errors counted:\n{m}");
    let log = server.log_text();
    assert!(
        log.contains("is the disk full?") && log.contains("503"),
        "the log says why canaries are refused:\n{log}"
    );
    assert_eq!(
        fetch(&agent, &format!("http://{}/healthz", addrs.admin))
            .unwrap()
            .status,
        200,
        "healthz while the disk is full"
    );
    common::figure(&format!(
        "disk full: {pages} pages served, {} canaries served before the writes failed, {refused} refused with 503, {write_errors} write errors",
        served.len()
    ));

    // Space returns: canaries are served and recorded again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    let mut after = Vec::new();
    while after.len() < 10 {
        assert!(
            started.elapsed() < PHASE,
            "canaries still refused after space returned\n{}",
            server.log_text()
        );
        let (status, canaries) = page_canaries(&agent, &base);
        assert_eq!(status, 200);
        for c in canaries {
            let r = fetch(&agent, &c).unwrap();
            match r.status {
                200 => after.push(canary_token(&c).unwrap()),
                503 => std::thread::sleep(Duration::from_millis(50)),
                other => panic!("{c}: {other} after space returned"),
            }
        }
    }
    let status = server.terminate();
    assert!(status.success(), "SIGTERM: {status}\n{}", server.log_text());

    // Every canary served, before and after, has its fetch in the store; the store checks out.
    let missing = common::canaries_not_stored(&env, served.iter().chain(&after));
    assert!(missing.is_empty(), "served but not recorded: {missing:?}");
    common::assert_db_check(&env, "the disk was full");
}
