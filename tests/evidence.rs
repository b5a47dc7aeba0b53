//! Evidence bundles end to end: a harvester is flagged through the real server while a person
//! browses beside it, its bundle is built, and then checked by faceprobe, by the bundle's own
//! verify.py, by sha256sum and by ssh-keygen; none of the person's traces is in it. Every kind
//! of tampering with an unzipped bundle is caught by both checkers, which name what changed.

mod common;

use common::{canary_token, http_agent, img_and_link_urls, tool_available, Env, Server};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "[detect]\npoll_ms = 50\npersist_secs = 1\n\n\
[evidence]\nsite = \"https://photos.example.org\"\noperator = \"Association Photo Test\"\ncontact = \"plainte@photos.example.org\"\n";

const CRAWLER_IP: &str = "203.0.113.7";
const CRAWLER_UA: &str = "python-requests/2.31.0";

const PERSON_IP: &str = "198.51.100.23";
const PERSON_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 PersonBrowser/7.7";
const PERSON_PRIVATE: &str = "/private/person-only-path-q7";
const PERSON_QUERY: &str = "person=zz91";

/// What must never show in a bundle: the person's address (and its /24), agent marker, paths.
const PERSON_MARKERS: [&str; 5] = [
    PERSON_IP,
    "198.51.100.",
    "PersonBrowser",
    "person-only-path-q7",
    "zz91",
];

/// An address no event had, for the tamper tests.
const FORGED_IP: &str = "192.0.2.44";

// ---- traffic -------------------------------------------------------------------------------

/// GET `path` as the crawler; the body.
fn crawler_get(agent: &ureq::Agent, server: &Server, path: &str) -> Vec<u8> {
    let mut r = agent
        .get(&server.url(path))
        .header("User-Agent", CRAWLER_UA)
        .header("X-Forwarded-For", CRAWLER_IP)
        .call()
        .unwrap_or_else(|e| panic!("crawler GET {path}: {e}"));
    r.body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap()
}

/// GET `path` as the person, in a browser: browser headers, a referer.
fn person_get(agent: &ureq::Agent, server: &Server, path: &str, dest: &str) {
    let document = dest == "document";
    let mut r = agent
        .get(&server.url(path))
        .header("User-Agent", PERSON_UA)
        .header("X-Forwarded-For", PERSON_IP)
        .header(
            "Accept",
            if document {
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            } else {
                "*/*"
            },
        )
        .header("Accept-Language", "fr-FR,fr;q=0.9,en;q=0.5")
        .header("Accept-Encoding", "gzip, deflate, br")
        .header("Sec-Fetch-Dest", dest)
        .header(
            "Sec-Fetch-Mode",
            if document { "navigate" } else { "no-cors" },
        )
        .header("Sec-Fetch-Site", "same-origin")
        .header(
            "Referer",
            &server.url(&format!("/gallery/1?{PERSON_QUERY}")),
        )
        .call()
        .unwrap_or_else(|e| panic!("person GET {path}: {e}"));
    let _ = r.body_mut().read_to_vec();
}

/// One round of the crawler (the page, robots.txt, every image of the page) with the person's
/// browsing interleaved; the crawler's request is always the last. Returns the crawler's
/// request count.
fn crawl_round(server: &Server) -> usize {
    let agent = http_agent();
    let page = String::from_utf8(crawler_get(&agent, server, "/")).unwrap();
    person_get(&agent, server, &format!("/?{PERSON_QUERY}"), "document");
    crawler_get(&agent, server, "/robots.txt");
    person_get(&agent, server, "/static/site.css", "style");
    let (imgs, _) = img_and_link_urls(&page);
    assert!(
        imgs.iter().any(|u| canary_token(u).is_some()),
        "the page has a canary: {page}"
    );
    for (i, img) in imgs.iter().enumerate() {
        if i == 1 {
            person_get(&agent, server, PERSON_PRIVATE, "document");
            person_get(
                &agent,
                server,
                &format!("/gallery/1?{PERSON_QUERY}"),
                "document",
            );
        }
        let body = crawler_get(&agent, server, img);
        assert!(common::is_whole_jpeg(&body), "{img} is a JPEG");
    }
    2 + imgs.len()
}

fn clients_json(env: &Env) -> Vec<serde_json::Value> {
    let out = env.run(&["clients", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A bundle built from real traffic.
struct Built {
    env: Env,
    /// The third server, still running.
    server: Server,
    /// The crawler's client key, and the person's.
    key: String,
    person_key: String,
    /// The crawler's requests.
    requests: usize,
    zip: PathBuf,
    /// The unzipped bundle folder (named by the bundle id).
    dir: PathBuf,
    build_stdout: String,
}

/// Three server runs (each shutdown signs a checkpoint), each with one round of crawling and
/// browsing; the crawler is flagged harvester; its bundle is built and unzipped.
fn build_bundle() -> Built {
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", CONFIG);
    let mut requests = 0;
    for _ in 0..2 {
        let mut server = env.serve(addrs);
        requests += crawl_round(&server);
        assert!(server.terminate().success(), "{}", server.log_text());
    }
    let server = env.serve(addrs);
    requests += crawl_round(&server);

    // Flagged, and every one of its events in the store.
    let start = Instant::now();
    let (key, person_key) = loop {
        let list = clients_json(&env);
        let find = |ip: &str| {
            list.iter()
                .find(|c| c["address"] == ip)
                .map(|c| (c["key"].as_str().unwrap().to_string(), c["level"].clone()))
        };
        if let (Some((key, level)), Some((person, _))) = (find(CRAWLER_IP), find(PERSON_IP)) {
            let stored: usize = env
                .db()
                .query_row(
                    "SELECT count(*) FROM events WHERE client_key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .unwrap();
            if level == "harvester" && stored == requests {
                break (key, person);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the crawler was not flagged harvester with its {requests} events within 30 s: {list:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(key, person_key);

    let zip = env.path("case.zip");
    let out = env.run(&[
        "evidence",
        "build",
        "--client",
        &key,
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "evidence build: {}", stderr(&out));
    let build_stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let dir = unzip(&zip, &env.path("unzipped"));
    Built {
        env,
        server,
        key,
        person_key,
        requests,
        zip,
        dir,
        build_stdout,
    }
}

/// Unpacks `zip` into `into`; returns the one top folder.
fn unzip(zip: &Path, into: &Path) -> PathBuf {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    let mut tops = std::collections::BTreeSet::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.enclosed_name().expect("a safe path in the zip");
        tops.insert(name.components().next().unwrap().as_os_str().to_owned());
        let path = into.join(&name);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).unwrap();
            continue;
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = std::fs::File::create(&path).unwrap();
        std::io::copy(&mut entry, &mut f).unwrap();
    }
    assert_eq!(tops.len(), 1, "one top folder in the zip: {tops:?}");
    into.join(tops.into_iter().next().unwrap())
}

// ---- small helpers -------------------------------------------------------------------------

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, relative path with `/`, sorted.
fn files_of(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for rel in files_of(from) {
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), dst).unwrap();
    }
}

fn read_text(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    read_text(path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `cmd` in the background, both outputs captured.
fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap()
}

/// The two checkers on one bundle folder: (name, success, stdout + stderr) of
/// `faceprobe evidence verify DIR` and, when `py` is given, `python3 VERIFY_PY DIR`.
fn check_both(dir: &Path, py: Option<&Path>) -> Vec<(&'static str, bool, String)> {
    let rust = spawn(
        Command::new(env!("CARGO_BIN_EXE_faceprobe"))
            .args(["evidence", "verify"])
            .arg(dir),
    );
    let python = py.map(|py| spawn(Command::new("python3").arg(py).arg(dir)));
    let mut out = Vec::new();
    let o = rust.wait_with_output().unwrap();
    out.push(("faceprobe evidence verify", o.status.success(), both(&o)));
    if let Some(p) = python {
        let o = p.wait_with_output().unwrap();
        out.push(("verify.py", o.status.success(), both(&o)));
    }
    out
}

/// The output's FAIL lines.
fn fail_lines(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.starts_with("FAIL")).collect()
}

/// The text of a PDF, with pdftotext.
fn pdf_text(pdf: &Path) -> String {
    let o = Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pdftotext {}: {}",
        pdf.display(),
        stderr(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---- 1. a bundle built through real traffic ------------------------------------------------

#[test]
fn a_bundle_built_from_real_traffic_verifies_everywhere_and_holds_nothing_of_the_person() {
    let Built {
        env,
        mut server,
        key,
        person_key,
        requests,
        zip,
        dir,
        build_stdout,
    } = build_bundle();
    assert!(build_stdout.contains("case opened"), "{build_stdout}");
    let zip_bytes = std::fs::read(&zip).unwrap();
    let zip_sha = sha256_hex(&zip_bytes);
    assert!(build_stdout.contains(&zip_sha), "{build_stdout}");

    // An existing --out is refused, and left as it was.
    let again = env.run(&[
        "evidence",
        "build",
        "--client",
        &key,
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert!(!again.status.success(), "a second build over {zip:?}");
    assert!(!stderr(&again).trim().is_empty());
    assert_eq!(
        std::fs::read(&zip).unwrap(),
        zip_bytes,
        "the archive was changed"
    );

    // The layout the format promises.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format"], "faceprobe-evidence-v1");
    assert_eq!(
        manifest["bundle"].as_str(),
        dir.file_name().and_then(|n| n.to_str())
    );
    assert_eq!(manifest["actor"]["key"], key.as_str());
    assert_eq!(manifest["site"], "https://photos.example.org");
    let files = files_of(&dir);
    for f in [
        "rapport.pdf",
        "rapport.html",
        "report.pdf",
        "report.html",
        "events.jsonl",
        "chain.jsonl",
        "checkpoints.jsonl",
        "canaries/index.csv",
        "site-images.csv",
        "flag.json",
        "faceprobe-key.pub",
        "allowed_signers",
        "verify.py",
        "VERIFIER.txt",
        "VERIFY.txt",
        "manifest.json",
        "manifest.sig",
        "SHA256SUMS",
    ] {
        assert!(files.iter().any(|p| p == f), "{f} is missing: {files:?}");
    }
    assert!(files.iter().any(|p| p.starts_with("robots/")), "{files:?}");
    assert_eq!(
        files
            .iter()
            .filter(|p| p.starts_with("canaries/") && p.ends_with(".jpg"))
            .count(),
        3,
        "three canaries fetched (one per round): {files:?}"
    );
    let events = jsonl(&dir.join("events.jsonl"));
    assert_eq!(events.len(), requests, "every request of the crawler");
    assert_eq!(manifest["chain"]["events"], requests);
    assert!(events.iter().all(|e| e["client_key"] == key.as_str()));
    let chain = jsonl(&dir.join("chain.jsonl"));
    let digests = chain.iter().filter(|l| l["type"] == "digest").count();
    assert!(
        digests >= 12,
        "the person's events are in the segment as digests: {digests}"
    );
    let checkpoints = jsonl(&dir.join("checkpoints.jsonl"));
    assert!(
        checkpoints.len() >= 3,
        "a checkpoint at each shutdown and one by the build: {checkpoints:?}"
    );

    // faceprobe's own checker: the zip and the folder.
    for target in [&zip, &dir] {
        let o = env.run(&["evidence", "verify", target.to_str().unwrap()]);
        let text = both(&o);
        assert!(o.status.success(), "evidence verify {target:?}:\n{text}");
        assert!(fail_lines(&text).is_empty(), "{text}");
        assert!(text.contains("checks hold"), "{text}");
    }

    // The key the site publishes, the bundle's and `faceprobe key show`'s are one.
    let served =
        common::fetch(&http_agent(), &server.url("/.well-known/faceprobe-key.pub")).unwrap();
    assert_eq!(served.status, 200);
    let bundled = read_text(&dir.join("faceprobe-key.pub"));
    assert_eq!(served.text().trim_end(), bundled.trim_end());
    let shown = env.run(&["key", "show"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert_eq!(shown.lines().next().unwrap_or_default(), bundled.trim_end());
    // ... and the checker accepts the bundle against the published key, and no other.
    let key_file = env.path("published.pub");
    std::fs::write(&key_file, &served.body).unwrap();
    let o = env.run(&[
        "evidence",
        "verify",
        "--key",
        key_file.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "verify --key:\n{}", both(&o));
    let other = tempfile::tempdir().unwrap();
    let other_key = faceprobe::store::signing::SigningKey::load_or_create(other.path(), None)
        .unwrap()
        .public_line();
    let o = env.run(&[
        "evidence",
        "verify",
        "--key",
        &other_key,
        dir.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "verify with another key:\n{}",
        both(&o)
    );
    assert!(
        fail_lines(&both(&o))
            .iter()
            .any(|l| l.contains("faceprobe-key.pub")),
        "{}",
        both(&o)
    );

    // The bundle's own checker, run as its VERIFY.txt says: inside the folder, no argument.
    if tool_available("python3", "apt-get install python3").is_some() {
        let o = Command::new("python3")
            .arg("verify.py")
            .current_dir(&dir)
            .output()
            .unwrap();
        let text = both(&o);
        assert!(o.status.success(), "python3 verify.py:\n{text}");
        assert!(text.contains("RESULT: OK"), "{text}");
        assert!(fail_lines(&text).is_empty(), "{text}");
        let o = Command::new("python3")
            .arg(dir.join("verify.py"))
            .arg(&zip)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "python3 verify.py case.zip:\n{}",
            both(&o)
        );
    }
    if tool_available("sha256sum", "apt-get install coreutils").is_some() {
        let o = Command::new("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "sha256sum -c:\n{}", both(&o));
        let listed = read_text(&dir.join("SHA256SUMS")).lines().count();
        assert_eq!(
            listed,
            files.len() - 2,
            "every file but SHA256SUMS and manifest.sig"
        );
    }
    if tool_available("ssh-keygen", "apt-get install openssh-client").is_some() {
        let o = Command::new("ssh-keygen")
            .args([
                "-Y",
                "verify",
                "-f",
                "allowed_signers",
                "-I",
                "faceprobe",
                "-n",
                "faceprobe-evidence",
                "-s",
                "manifest.sig",
            ])
            .stdin(std::fs::File::open(dir.join("manifest.json")).unwrap())
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "ssh-keygen -Y verify:\n{}", both(&o));
        assert!(both(&o).contains("Good"), "{}", both(&o));
    }

    // The case is opened in the store, and the build recorded with the archive's hash.
    {
        let db = env.db();
        let cases: i64 = db
            .query_row("SELECT count(*) FROM cases WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(cases, 1, "the case of {key}");
        let reason: String = db
            .query_row(
                "SELECT reason FROM holds WHERE client_key = ?1",
                [&key],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(reason, "case");
        let rows: Vec<(String, String, i64, i64)> = db
            .prepare("SELECT bundle, sha256, bytes, events FROM bundles WHERE case_key = ?1")
            .unwrap()
            .query_map([&key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "one build recorded (the refused one is not): {rows:?}"
        );
        let (bundle, sha, bytes, n) = &rows[0];
        assert_eq!(Some(bundle.as_str()), manifest["bundle"].as_str());
        assert_eq!(*sha, zip_sha, "the recorded SHA-256 is the archive's");
        assert_eq!(*bytes, zip_bytes.len() as i64);
        assert_eq!(*n, requests as i64);
    }

    // PRIVACY: nothing of the person in any file, byte for byte; the crawler is there.
    let mut needles: Vec<&str> = PERSON_MARKERS.to_vec();
    needles.push(&person_key);
    for rel in &files {
        let bytes = std::fs::read(dir.join(rel)).unwrap();
        for n in &needles {
            assert!(
                !contains(&bytes, n.as_bytes()),
                "{rel} holds the person's {n:?}"
            );
        }
    }
    let events_bytes = std::fs::read(dir.join("events.jsonl")).unwrap();
    assert!(contains(&events_bytes, CRAWLER_IP.as_bytes()));
    assert!(contains(&events_bytes, CRAWLER_UA.as_bytes()));

    // The store is sound after the build.
    assert!(server.terminate().success(), "{}", server.log_text());
    let o = env.run(&["db", "check"]);
    assert!(o.status.success(), "db check:\n{}", both(&o));
    assert!(both(&o).contains("checkpoints: ok"), "{}", both(&o));
    // A signed checkpoint's chain value is what `db check` compares with the chain: one
    // rewritten in the store (message and all, but not re-signed) fails it.
    let rw = rusqlite::Connection::open(env.data_dir().join("faceprobe.db")).unwrap();
    let (seq, chain): (i64, Vec<u8>) = rw
        .query_row(
            "SELECT seq, chain FROM checkpoints ORDER BY seq LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let forged = [0x5au8; 32];
    rw.execute(
        "UPDATE checkpoints SET chain = ?1, message = replace(message, ?2, ?3) WHERE seq = ?4",
        rusqlite::params![&forged[..], hex::encode(&chain), hex::encode(forged), seq],
    )
    .unwrap();
    let o = env.run(&["db", "check"]);
    assert!(
        !o.status.success(),
        "a forged checkpoint passed:\n{}",
        both(&o)
    );
    assert!(
        both(&o).contains(&format!(
            "checkpoints: BROKEN: checkpoint {seq}: the signature"
        )),
        "{}",
        both(&o)
    );
    rw.execute(
        "UPDATE checkpoints SET chain = ?1, message = replace(message, ?2, ?3) WHERE seq = ?4",
        rusqlite::params![&chain[..], hex::encode(forged), hex::encode(&chain), seq],
    )
    .unwrap();
    drop(rw);

    // The reports: real PDFs (Typst) whose text a reader can search, fonts embedded.
    if tool_available("pdftotext", "apt-get install poppler-utils").is_none() {
        return;
    }
    for (pdf, lang_words) in [
        ("rapport.pdf", &["Rapport"][..]),
        (
            "report.pdf",
            &["report", "Report", "Evidence", "evidence"][..],
        ),
    ] {
        let path = dir.join(pdf);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes.starts_with(b"%PDF-1.") || bytes.starts_with(b"%PDF-2."),
            "{pdf} is not a PDF: it starts with {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        );
        let text = pdf_text(&path);
        let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for n in &needles {
            assert!(
                !text.contains(n) && !squeezed.contains(n),
                "the text of {pdf} holds the person's {n:?}"
            );
        }
        assert!(
            squeezed.contains(CRAWLER_IP),
            "the text of {pdf} names the crawler's address:\n{text}"
        );
        assert!(
            squeezed.contains("python-requests"),
            "the text of {pdf} names the crawler's agent:\n{text}"
        );
        assert!(
            lang_words.iter().any(|w| text.contains(w)),
            "{pdf} is not in its language (none of {lang_words:?}):\n{text}"
        );
        let o = Command::new("pdffonts").arg(&path).output().unwrap();
        assert!(o.status.success(), "pdffonts {pdf}: {}", stderr(&o));
        let listing = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut lines = listing.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert!(
            header.ends_with(&["emb", "sub", "uni", "object", "ID"]),
            "pdffonts names its columns: {listing}"
        );
        assert!(
            lines.next().is_some_and(|l| l.starts_with("---")),
            "{listing}"
        );
        let fonts: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
        assert!(!fonts.is_empty(), "{pdf} has no font:\n{listing}");
        for f in fonts {
            // A name may be wider than its column: count from the end (emb sub uni num gen).
            let cols: Vec<&str> = f.split_whitespace().collect();
            assert!(cols.len() >= 6, "{pdf}: {f:?}");
            assert_eq!(
                cols[cols.len() - 5],
                "yes",
                "{pdf}: a font is not embedded:\n{listing}"
            );
        }
    }
}

// ---- 2. tampering --------------------------------------------------------------------------

/// One tampering: what it does to a fresh copy of the bundle folder, and what each checker's
/// FAIL lines must name.
struct Tamper {
    name: String,
    apply: Box<dyn Fn(&Path)>,
    /// Substrings that must each show in some FAIL line of both checkers.
    names: Vec<String>,
    /// Further substrings for verify.py only.
    py_names: Vec<String>,
}

fn tamper(name: impl Into<String>, names: &[&str], apply: impl Fn(&Path) + 'static) -> Tamper {
    Tamper {
        name: name.into(),
        apply: Box::new(apply),
        names: names.iter().map(|s| s.to_string()).collect(),
        py_names: Vec::new(),
    }
}

/// XORs 0x01 into one byte in the middle of the file: for a text file, the first letter or
/// digit from the middle on (so that it stays text).
fn flip_middle(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let text = std::str::from_utf8(&bytes).is_ok() && !bytes.contains(&0);
    let mut i = bytes.len() / 2;
    if text {
        while !bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
    }
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Replaces line `n` (0-based) of a file.
fn edit_line(path: &Path, n: usize, edit: impl FnOnce(&str) -> String) {
    let text = read_text(path);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[n] = edit(&lines[n]);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn remove_line(path: &Path, n: usize) {
    let text = read_text(path);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(n);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// One hex digit of `hex` changed (its last).
fn other_hex(hex: &str) -> String {
    let mut s = hex.to_string();
    let last = s.pop().unwrap();
    s.push(if last == '0' { '1' } else { '0' });
    s
}

/// Rewrites SHA256SUMS and the entries of manifest.json to match the files as they are now:
/// what anyone can do without the signing key.
fn recompute_lists(dir: &Path) {
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for f in manifest["files"].as_array_mut().unwrap() {
        let bytes = std::fs::read(dir.join(f["path"].as_str().unwrap())).unwrap();
        f["sha256"] = sha256_hex(&bytes).into();
        f["bytes"] = bytes.len().into();
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let mut sums = String::new();
    for line in read_text(&dir.join("SHA256SUMS")).lines() {
        let (_, path) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(dir.join(path)).unwrap();
        sums.push_str(&format!("{}  {path}\n", sha256_hex(&bytes)));
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

/// Runs each tampering on a fresh copy of `pristine` and asserts that both checkers fail and
/// name what they must; returns the failures (all of them, not only the first).
fn run_tampers(pristine: &Path, work: &Path, py: Option<&Path>, cases: &[Tamper]) -> Vec<String> {
    let name = pristine.file_name().unwrap();
    let mut problems = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = work.join(format!("case-{i}")).join(name);
        copy_dir(pristine, &dir);
        (case.apply)(&dir);
        for (checker, ok, output) in check_both(&dir, py) {
            if ok {
                problems.push(format!(
                    "[{}] {checker} exits 0 on it:\n{output}",
                    case.name
                ));
                continue;
            }
            let fails = fail_lines(&output);
            // Shown with --nocapture, or when the test fails.
            eprintln!("[{}] {checker}:\n  {}", case.name, fails.join("\n  "));
            let extra = if checker == "verify.py" {
                &case.py_names[..]
            } else {
                &[][..]
            };
            for n in case.names.iter().chain(extra) {
                if !fails.iter().any(|l| l.contains(n.as_str())) {
                    problems.push(format!(
                        "[{}] {checker}: no FAIL line names {n:?}:\n{output}",
                        case.name
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_kind_of_tampering_is_caught_by_both_checkers_which_name_it() {
    let built = build_bundle();
    let pristine = built.dir.clone();
    let work = built.env.path("tampered");
    let py =
        tool_available("python3", "apt-get install python3").map(|_| pristine.join("verify.py"));

    // An unchanged copy holds, with both: the copies themselves are sound.
    let copy = work.join("unchanged").join(pristine.file_name().unwrap());
    copy_dir(&pristine, &copy);
    for (checker, ok, output) in check_both(&copy, py.as_deref()) {
        assert!(ok, "{checker} rejects an unchanged copy:\n{output}");
    }

    let files = files_of(&pristine);
    let first = |prefix: &str, suffix: &str| {
        files
            .iter()
            .find(|p| p.starts_with(prefix) && p.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {files:?}"))
            .clone()
    };
    let canary = first("canaries/", ".jpg");
    let robots = first("robots/", ".txt");

    let events = jsonl(&pristine.join("events.jsonl"));
    let chain = jsonl(&pristine.join("chain.jsonl"));
    let checkpoints = jsonl(&pristine.join("checkpoints.jsonl"));
    assert!(checkpoints.len() >= 3, "{checkpoints:?}");
    assert!(events.len() >= 6);
    let id = |v: &serde_json::Value| v["id"].as_i64().unwrap();

    let mut cases = Vec::new();
    // One byte flipped in each kind of file.
    for f in [
        "events.jsonl",
        "chain.jsonl",
        "checkpoints.jsonl",
        "manifest.json",
        "manifest.sig",
        "SHA256SUMS",
        "rapport.pdf",
        canary.as_str(),
        robots.as_str(),
        "flag.json",
        "site-images.csv",
        "canaries/index.csv",
    ] {
        let rel = f.to_string();
        cases.push(tamper(format!("a byte of {f} flipped"), &[f], move |d| {
            flip_middle(&d.join(&rel))
        }));
    }
    // A file removed, a file added.
    {
        let rel = canary.clone();
        cases.push(tamper(
            format!("{canary} removed"),
            &[canary.as_str(), "removed"],
            move |d| std::fs::remove_file(d.join(&rel)).unwrap(),
        ));
    }
    cases.push(tamper("extra.txt added", &["extra.txt", "added"], |d| {
        std::fs::write(d.join("extra.txt"), "a file the builder did not write\n").unwrap()
    }));
    // Two events swapped.
    {
        let (a, b) = (id(&events[1]), id(&events[2]));
        let what = format!("event {a} comes after event {b}");
        cases.push(tamper(
            "two events swapped",
            &["events.jsonl", &what],
            |d| {
                let path = d.join("events.jsonl");
                let text = read_text(&path);
                let mut lines: Vec<&str> = text.lines().collect();
                lines.swap(1, 2);
                std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            },
        ));
    }
    // An address changed (the JSON stays valid).
    let changed = events.len() / 2;
    let changed_id = id(&events[changed]);
    let readdress = move |d: &Path| {
        edit_line(&d.join("events.jsonl"), changed, |l| {
            let from = format!("\"client_ip\":\"{CRAWLER_IP}\"");
            assert!(l.contains(&from), "{l}");
            let l = l.replace(&from, &format!("\"client_ip\":\"{FORGED_IP}\""));
            serde_json::from_str::<serde_json::Value>(&l).unwrap();
            l
        })
    };
    {
        let at = format!("event {changed_id}:");
        cases.push(tamper(
            format!("the address of event {changed_id} changed"),
            &["events.jsonl", &at, "commitment", FORGED_IP],
            readdress,
        ));
    }
    // An intermediate digest changed: the first actor event or checkpoint after it is where
    // the chain stops matching.
    {
        let cp_ids: Vec<i64> = checkpoints
            .iter()
            .map(|c| c["event_id"].as_i64().unwrap())
            .collect();
        let line = (1..chain.len())
            .find(|&n| {
                chain[n]["type"] == "digest" && chain[n + 1..].iter().any(|l| l["type"] == "event")
            })
            .expect("a digest line before an event of the actor");
        let d_id = id(&chain[line]);
        let meets = chain[line..]
            .iter()
            .filter(|l| l["type"] == "event" || l["type"] == "digest" && cp_ids.contains(&id(l)))
            .map(id)
            .next()
            .unwrap();
        let at = format!("event {meets}:");
        cases.push(tamper(
            format!("the digest of event {d_id} changed (first mismatch at event {meets})"),
            &["chain.jsonl", &at],
            move |d| {
                edit_line(&d.join("chain.jsonl"), line, |l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let digest = v["digest"].as_str().unwrap();
                    l.replace(digest, &other_hex(digest))
                })
            },
        ));
    }
    // A checkpoint forged: (a) its chain value and the matching line of its message changed,
    // not signed again; (b) the same, signed again with another key; (c) below.
    let forged_cp = |c: &serde_json::Value| {
        let old = c["chain"].as_str().unwrap().to_string();
        let new = other_hex(&old);
        let message = c["message"]
            .as_str()
            .unwrap()
            .replace(&format!("chain: {old}\n"), &format!("chain: {new}\n"));
        assert_ne!(message, c["message"].as_str().unwrap());
        let mut v = c.clone();
        v["chain"] = new.into();
        v["message"] = message.into();
        v
    };
    let cp0 = &checkpoints[0];
    let cp_at = format!("(event {})", cp0["event_id"]);
    {
        let forged = serde_json::to_string(&forged_cp(cp0)).unwrap();
        cases.push(tamper(
            "a checkpoint's chain and message changed, not signed again",
            &["checkpoints.jsonl", &cp_at],
            move |d| edit_line(&d.join("checkpoints.jsonl"), 0, |_| forged.clone()),
        ));
    }
    {
        // (c) its time changed on its line only: the message signed no longer says it.
        let mut v = cp0.clone();
        v["ts_ms"] = (cp0["ts_ms"].as_i64().unwrap() + 1).into();
        let changed = serde_json::to_string(&v).unwrap();
        cases.push(tamper(
            "a checkpoint's time changed on its line, not in the message it signed",
            &["checkpoints.jsonl", &cp_at],
            move |d| edit_line(&d.join("checkpoints.jsonl"), 0, |_| changed.clone()),
        ));
    }
    let other_dir = tempfile::tempdir().unwrap();
    let other =
        faceprobe::store::signing::SigningKey::load_or_create(other_dir.path(), None).unwrap();
    {
        let mut v = forged_cp(cp0);
        v["signature"] = other
            .sign(
                faceprobe::store::signing::NAMESPACE_CHECKPOINT,
                v["message"].as_str().unwrap().as_bytes(),
            )
            .unwrap()
            .into();
        let forged = serde_json::to_string(&v).unwrap();
        let mut t = tamper(
            "a checkpoint's chain and message changed, signed again with another key",
            &["checkpoints.jsonl", &cp_at],
            move |d| edit_line(&d.join("checkpoints.jsonl"), 0, |_| forged.clone()),
        );
        t.py_names.push(other.fingerprint());
        cases.push(t);
    }
    // A checkpoint dropped: one inside the segment, and the one at its end.
    let last_cp = checkpoints.len() - 1;
    cases.push(tamper(
        format!("checkpoint seq {} dropped", checkpoints[1]["seq"]),
        &["checkpoints.jsonl"],
        |d| remove_line(&d.join("checkpoints.jsonl"), 1),
    ));
    {
        let end = format!("event {}", checkpoints[last_cp]["event_id"]);
        cases.push(tamper(
            "the checkpoint at the segment's end dropped",
            &["checkpoints.jsonl", &end],
            move |d| remove_line(&d.join("checkpoints.jsonl"), last_cp),
        ));
    }

    let problems = run_tampers(&pristine, &work, py.as_deref(), &cases);
    assert!(
        problems.is_empty(),
        "{} of {} tamperings not caught or not named:\n\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n\n")
    );
}

/// An attacker without the key who changes an address and then rewrites SHA256SUMS and
/// manifest.json to match: the lists hold, but manifest.sig and the event's commitment fail.
#[test]
fn an_address_changed_with_the_lists_rewritten_is_still_caught() {
    let built = build_bundle();
    let pristine = built.dir.clone();
    let py =
        tool_available("python3", "apt-get install python3").map(|_| pristine.join("verify.py"));
    let events = jsonl(&pristine.join("events.jsonl"));
    let changed = events.len() / 2;
    let changed_id = events[changed]["id"].as_i64().unwrap();
    let name = pristine.file_name().unwrap();

    let dir = built.env.path("readdressed").join(name);
    copy_dir(&pristine, &dir);
    edit_line(&dir.join("events.jsonl"), changed, |l| {
        let from = format!("\"client_ip\":\"{CRAWLER_IP}\"");
        assert!(l.contains(&from), "{l}");
        l.replace(&from, &format!("\"client_ip\":\"{FORGED_IP}\""))
    });
    recompute_lists(&dir);
    if tool_available("sha256sum", "apt-get install coreutils").is_some() {
        let o = Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "the rewritten SHA256SUMS holds:\n{}",
            both(&o)
        );
    }
    let at = format!("event {changed_id}:");
    for (checker, ok, output) in check_both(&dir, py.as_deref()) {
        assert!(!ok, "{checker} accepts a changed address:\n{output}");
        let ok_lines: Vec<&str> = output.lines().filter(|l| l.starts_with("ok")).collect();
        for list in ["SHA256SUMS", "manifest.json"] {
            assert!(
                ok_lines.iter().any(|l| l.starts_with(&format!("ok   {list}"))),
                "{checker}: the rewritten {list} should hold (the attack is the signature's to catch):\n{output}"
            );
        }
        let fails = fail_lines(&output);
        assert!(
            fails.iter().any(|l| l.contains("manifest.sig")),
            "{checker}: manifest.sig does not fail:\n{output}"
        );
        assert!(
            fails
                .iter()
                .any(|l| l.contains(&at) && l.contains("commitment")),
            "{checker}: the commitment of event {changed_id} does not fail:\n{output}"
        );
    }
}

/// What the lists cannot vouch for, checked against the files themselves: with SHA256SUMS and
/// manifest.json rewritten after each change (only manifest.sig then fails), each checker still
/// names the change in the file's own terms.
#[test]
fn content_changes_with_the_lists_rewritten_are_named_by_both_checkers() {
    let built = build_bundle();
    let pristine = built.dir.clone();
    let py =
        tool_available("python3", "apt-get install python3").map(|_| pristine.join("verify.py"));
    let events = jsonl(&pristine.join("events.jsonl"));
    let robots = files_of(&pristine)
        .into_iter()
        .find(|f| f.starts_with("robots/"))
        .expect("the crawler fetched robots.txt, so the bundle holds a version");
    let canary_at = events
        .iter()
        .position(|e| e["kind"] == "canary")
        .expect("the crawler took a canary");
    let page_id = events
        .iter()
        .find(|e| e["kind"] != "canary")
        .expect("the crawler fetched more than canaries")["id"]
        .as_i64()
        .unwrap();
    let last_field = |line: &str, to: &str| match line.rsplit_once(',') {
        Some((head, _)) => format!("{head},{to}"),
        None => panic!("{line}"),
    };
    let cases = vec![
        tamper(
            format!("{robots} changed, its name kept"),
            &["its SHA-256 is not its name"],
            move |d| {
                let mut text = read_text(&d.join(&robots));
                text.push_str("Allow: /\n");
                std::fs::write(d.join(&robots), text).unwrap();
                recompute_lists(d);
            },
        ),
        tamper(
            "a site image's fetch moved to an event not in the bundle",
            &["site-images.csv", "999999999", "is not in events.jsonl"],
            move |d| {
                edit_line(&d.join("site-images.csv"), 1, |l| {
                    last_field(l, "999999999")
                });
                recompute_lists(d);
            },
        ),
        tamper(
            "a canary's fetch moved to a page's event",
            &["canaries/index.csv", "fetched another token"],
            move |d| {
                edit_line(&d.join("canaries/index.csv"), 1, |l| {
                    last_field(l, &page_id.to_string())
                });
                recompute_lists(d);
            },
        ),
        tamper(
            "a canary event's token_text changed",
            &["token_text"],
            move |d| {
                edit_line(&d.join("events.jsonl"), canary_at, |l| {
                    let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
                    let text = e["token_text"].as_str().unwrap();
                    let other = format!(
                        "{}{}",
                        &text[..text.len() - 1],
                        if text.ends_with('A') { 'B' } else { 'A' }
                    );
                    e["token_text"] = other.into();
                    serde_json::to_string(&e).unwrap()
                });
                recompute_lists(d);
            },
        ),
        tamper(
            "manifest.json's chain.start_after changed",
            &["manifest.json", "chain.start_after"],
            |d| {
                let path = d.join("manifest.json");
                let mut m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let after = m["chain"]["start_after"].as_i64().unwrap();
                m["chain"]["start_after"] = (after + 1).into();
                std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
                recompute_lists(d);
            },
        ),
    ];
    let problems = run_tampers(&pristine, &built.env.path("content"), py.as_deref(), &cases);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A checkpoint dropped from the middle of checkpoints.jsonl, SHA256SUMS and manifest.json
/// rewritten to match: manifest.sig fails, and each checker names the gap in `seq` (the format:
/// "`seq` runs without a gap ... a dropped checkpoint shows").
#[test]
fn a_checkpoint_dropped_with_the_lists_rewritten_is_named_by_both_checkers() {
    let built = build_bundle();
    let pristine = built.dir.clone();
    let py =
        tool_available("python3", "apt-get install python3").map(|_| pristine.join("verify.py"));
    let checkpoints = jsonl(&pristine.join("checkpoints.jsonl"));
    assert!(checkpoints.len() >= 3, "{checkpoints:?}");
    let dir = built
        .env
        .path("dropped")
        .join(pristine.file_name().unwrap());
    copy_dir(&pristine, &dir);
    remove_line(&dir.join("checkpoints.jsonl"), 1);
    recompute_lists(&dir);
    for (checker, ok, output) in check_both(&dir, py.as_deref()) {
        assert!(!ok, "{checker} accepts a dropped checkpoint:\n{output}");
        let fails = fail_lines(&output);
        assert!(
            fails.iter().any(|l| l.contains("manifest.sig")),
            "{checker}: manifest.sig does not fail:\n{output}"
        );
        assert!(
            fails.iter().any(|l| l.contains("checkpoints.jsonl")),
            "{checker}: no FAIL line names checkpoints.jsonl (seq {} is missing):\n{output}",
            checkpoints[1]["seq"]
        );
    }
}

#[test]
fn build_and_verify_refuse_what_they_cannot_do() {
    let env = Env::new();
    let mut config = read_text(&env.config);
    config.push_str(&format!("\n{CONFIG}"));
    std::fs::write(&env.config, config).unwrap();

    // An unknown key: the message points to `faceprobe clients`; no archive is left.
    let out = env.path("nobody.zip");
    let o = env.run(&[
        "evidence",
        "build",
        "--client",
        "c:nosuchclient",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("faceprobe clients"), "{}", stderr(&o));
    assert!(!out.exists());
    // Nor the scratch folder the large files are spooled to.
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // An existing --out is refused and left as it was.
    let existing = env.path("existing.zip");
    std::fs::write(&existing, b"keep me").unwrap();
    let o = env.run(&[
        "evidence",
        "build",
        "--client",
        "c:nosuchclient",
        "--out",
        existing.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("existing.zip"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    // A file that is not a zip, and a path that does not exist.
    let junk = env.path("junk.zip");
    std::fs::write(&junk, b"this is not a zip archive\n").unwrap();
    let o = env.run(&["evidence", "verify", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(both(&o).contains("junk.zip"), "{}", both(&o));
    assert!(both(&o).contains("zip"), "{}", both(&o));
    let o = env.run(&[
        "evidence",
        "verify",
        env.path("absent.zip").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(both(&o).contains("absent.zip"), "{}", both(&o));

    // verify.py says the same, with its usage-error status.
    if tool_available("python3", "apt-get install python3").is_some() {
        let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/evidence/verify.py");
        let o = Command::new("python3")
            .arg(&py)
            .arg(&junk)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", both(&o));
        assert!(both(&o).contains("junk.zip"), "{}", both(&o));
    }
}

// ---- fleet bundles ---------------------------------------------------------------------------

/// A change made to an unzipped bundle.
type Forgery = Box<dyn Fn(&Path)>;

/// Relists every file of an unzipped bundle in manifest.json and SHA256SUMS and signs the
/// manifest again with `key`: only the checks behind the signature can then catch a change.
fn relist_and_sign(dir: &Path, key: &faceprobe::store::signing::SigningKey) {
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<serde_json::Value> = files_of(dir)
        .into_iter()
        .filter(|f| !["manifest.json", "manifest.sig", "SHA256SUMS"].contains(&f.as_str()))
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            serde_json::json!({"path": f, "sha256": sha256_hex(&bytes), "bytes": bytes.len()})
        })
        .collect();
    manifest["files"] = listed.into();
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    let mut sums = String::new();
    for f in files_of(dir) {
        if f != "manifest.sig" && f != "SHA256SUMS" {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            sums.push_str(&format!("{}  {f}\n", sha256_hex(&bytes)));
        }
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    let sig = key
        .sign(faceprobe::store::signing::NAMESPACE_EVIDENCE, &manifest)
        .unwrap();
    std::fs::write(dir.join("manifest.sig"), sig).unwrap();
}

/// A fleet bundle (one folder per instance, as `evidence build --fleet` writes from the fleet
/// store; tests/fleet.rs builds one from PostgreSQL) from two instances' records, addresses
/// as commitments only: both checkers verify it, and each folder answers to its own key even
/// when the builder signs a forged manifest.
#[test]
fn a_fleet_bundle_verifies_and_each_instance_answers_to_its_own_key() {
    use faceprobe::evidence::bundle::{build_fleet, FleetPart, FleetRequest};
    use faceprobe::store::signing::SigningKey;
    let mut parts = Vec::new();
    let mut envs = Vec::new();
    for name in ["web-1", "web-2"] {
        let env = Env::new();
        let addrs = env.configure_serve("mode = \"demo\"", CONFIG);
        let mut server = env.serve(addrs);
        crawl_round(&server);
        assert!(server.terminate().success(), "{}", server.log_text());
        let conn = rusqlite::Connection::open(env.data_dir().join("faceprobe.db")).unwrap();
        let key: String = conn
            .query_row(
                "SELECT client_key FROM events WHERE client_ip = ?1 LIMIT 1",
                [CRAWLER_IP],
                |r| r.get(0),
            )
            .unwrap();
        // As the fleet store holds them: no address, no pseudonym, the commitment only.
        conn.execute(
            "UPDATE events SET client_ip = NULL, ip_nonce = NULL, ip_pseudonym = NULL",
            [],
        )
        .unwrap();
        parts.push(FleetPart {
            instance: name.into(),
            site: format!("https://{name}.example.org"),
            key: SigningKey::load_or_create(&env.data_dir(), None)
                .unwrap()
                .public(),
            conn,
            actor_keys: [key].into(),
            history: Vec::new(),
        });
        envs.push(env);
    }
    let builder = &envs[0];
    let config = faceprobe::config::Config::load(Some(&builder.config)).unwrap();
    let zip = builder.path("fleet.zip");
    let built = build_fleet(
        &config,
        FleetRequest {
            actor: "a:0123456789abcdef01234567",
            level: Some("harvester".into()),
            score: 90.0,
            flag: serde_json::json!({"actor": "a:0123456789abcdef01234567"}),
            parts,
            out: &zip,
            command: "test".into(),
            built_by: Some("tester".into()),
        },
    )
    .unwrap();
    assert_eq!(built.instances.len(), 2);
    assert!(built.events > 0);
    let pristine = unzip(&zip, &builder.path("unzipped"));
    for f in files_of(&pristine) {
        let bytes = std::fs::read(pristine.join(&f)).unwrap();
        assert!(
            !contains(&bytes, CRAWLER_IP.as_bytes()),
            "{f} holds an address"
        );
    }
    let py =
        tool_available("python3", "apt-get install python3").map(|_| pristine.join("verify.py"));
    for (checker, ok, out) in check_both(&pristine, py.as_deref()) {
        assert!(ok, "{checker}:\n{out}");
        for name in ["web-1", "web-2"] {
            assert!(
                out.contains(&format!("instance {name}: ")),
                "{checker}:\n{out}"
            );
        }
    }

    // Forgeries the builder's signature does not catch (it signed them).
    let signer = SigningKey::load_or_create(&builder.data_dir(), None).unwrap();
    let cases: Vec<(&str, &str, Forgery)> = vec![
        (
            "web-1's checkpoints signed again by another key, which its folder holds",
            "instance web-1",
            Box::new(|d: &Path| {
                let other = tempfile::tempdir().unwrap();
                let other = SigningKey::load_or_create(other.path(), None).unwrap();
                let folder = d.join("instances/web-1");
                let path = folder.join("checkpoints.jsonl");
                let mut lines = String::new();
                for line in read_text(&path).lines() {
                    let mut c: serde_json::Value = serde_json::from_str(line).unwrap();
                    let message = c["message"].as_str().unwrap().to_string();
                    c["signature"] = other
                        .sign(
                            faceprobe::store::signing::NAMESPACE_CHECKPOINT,
                            message.as_bytes(),
                        )
                        .unwrap()
                        .into();
                    lines.push_str(&format!("{c}\n"));
                }
                std::fs::write(&path, lines).unwrap();
                let public = other.public();
                std::fs::write(
                    folder.join("faceprobe-key.pub"),
                    format!("{}\n", public.line),
                )
                .unwrap();
                std::fs::write(
                    folder.join("allowed_signers"),
                    format!("{}\n", public.allowed_signers()),
                )
                .unwrap();
            }),
        ),
        (
            "a folder of no instance",
            "instances/evil",
            Box::new(|d: &Path| {
                std::fs::create_dir_all(d.join("instances/evil")).unwrap();
                std::fs::write(d.join("instances/evil/events.jsonl"), "{}\n").unwrap();
            }),
        ),
        (
            "an instance's folder outside instances/",
            "web-2",
            Box::new(|d: &Path| {
                let path = d.join("manifest.json");
                let mut m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                m["instances"][1]["path"] = "instances/../web-2".into();
                std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
            }),
        ),
        (
            "one event of web-2 changed",
            "instance web-2",
            Box::new(|d: &Path| {
                edit_line(&d.join("instances/web-2/events.jsonl"), 0, |l| {
                    l.replacen("\"GET\"", "\"PUT\"", 1)
                })
            }),
        ),
    ];
    for (n, (what, named, apply)) in cases.iter().enumerate() {
        let dir = builder
            .path(&format!("forged-{n}"))
            .join(pristine.file_name().unwrap());
        copy_dir(&pristine, &dir);
        apply(&dir);
        relist_and_sign(&dir, &signer);
        for (checker, ok, out) in check_both(&dir, py.as_deref()) {
            assert!(!ok, "{checker} accepts {what}:\n{out}");
            assert!(
                fail_lines(&out).iter().any(|l| l.contains(named)),
                "{checker} on {what}: no FAIL line names {named}:\n{out}"
            );
        }
    }
}
