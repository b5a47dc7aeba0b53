//! Hostile input: image bombs given to `match` and uploaded to the dashboard get a clear error,
//! decode nothing they declare, and stay well under 256 MB while other requests are answered;
//! a damaged database file is found at start, named, and left as it was.
//!
//! Each bomb's time and peak memory are printed (`cargo test --test hostile -- --nocapture`);
//! SECURITY.md records them. Memory is asserted (the bound is the point of the limits); time is
//! printed, not asserted (a test does not time the machine), beyond a bound against hanging.

mod common;

use common::{http_agent, Env};
use flate2::write::ZlibEncoder;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The memory a refused image may cost `faceprobe match` at most, in KiB.
const MEMORY_BOUND_KIB: i64 = 256 * 1024;
/// Longer than this is a hang, not a slow machine.
const HANG: Duration = Duration::from_secs(30);

/// One PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A PNG of `width` x `height` 8-bit RGB whose pixel data is `rows` rows of zeros, deflated
/// (a few hundred KB for hundreds of MB of pixels), with `extra` chunks before the data.
fn png(width: u32, height: u32, rows: u32, extra: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    for (kind, data) in extra {
        chunk(&mut out, kind, data);
    }
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; 1 + width as usize * 3];
    for _ in 0..rows {
        z.write_all(&row).unwrap();
    }
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// `len` bytes of zeros, deflated.
fn deflated_zeros(len: usize) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        z.write_all(&block[..n]).unwrap();
        left -= n;
    }
    z.finish().unwrap()
}

/// An animated WebP (VP8X with the animation flag) declaring a canvas of `side` x `side`
/// and `frames` frames of one lossless pixel each.
fn animated_webp(side: u32, frames: usize) -> Vec<u8> {
    let riff_chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend_from_slice(kind);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
    };
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0];
    vp8x.extend_from_slice(&(side - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(side - 1).to_le_bytes()[..3]);
    riff_chunk(&mut body, b"VP8X", &vp8x);
    riff_chunk(&mut body, b"ANIM", &[0, 0, 0, 0, 0, 0]);
    // A 1x1 lossless frame: signature, 14-bit width-1 and height-1, no alpha, version 0, then
    // a minimal bitstream (it may not decode; the canvas is refused before it matters).
    let vp8l = [0x2f, 0, 0, 0, 0, 0x88, 0x88, 0x08];
    for _ in 0..frames {
        let mut anmf = vec![0u8; 16];
        anmf[12] = 100; // duration
        let mut frame = Vec::new();
        riff_chunk(&mut frame, b"VP8L", &vp8l);
        anmf.extend_from_slice(&frame);
        riff_chunk(&mut body, b"ANMF", &anmf);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A GIF of `frames` frames of `side` x `side`.
fn animated_gif(side: u16, frames: usize) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let frame =
            image::RgbaImage::from_pixel(side.into(), side.into(), image::Rgba([9, 9, 9, 255]));
        for _ in 0..frames {
            enc.encode_frame(image::Frame::new(frame.clone())).unwrap();
        }
    }
    out
}

/// An ICO file whose one image is a PNG (as Windows icons since Vista carry them).
fn ico_with_png() -> Vec<u8> {
    let inner = png(64, 64, 64, &[]);
    let mut out = vec![0, 0, 1, 0, 1, 0];
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 32, 0]);
    out.extend_from_slice(&(inner.len() as u32).to_le_bytes());
    out.extend_from_slice(&22u32.to_le_bytes());
    out.extend_from_slice(&inner);
    out
}

/// Runs `faceprobe match FILE` and returns (exit code, stderr, wall time, peak RSS in KiB).
// The child is reaped by wait4(2), which also gives its peak memory; std's wait would not.
#[allow(clippy::zombie_processes)]
fn run_match(env: &Env, file: &Path) -> (i32, String, Duration, i64) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_faceprobe"))
        .arg("--config")
        .arg(&env.config)
        .arg("match")
        .arg(file)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    // The output is small (one line): it fits the pipes until the child is reaped.
    loop {
        // SAFETY: wait4 on our own child, with valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(
            started.elapsed() < HANG,
            "faceprobe match {} hangs",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let mut stderr = String::new();
    use std::io::Read;
    child.stderr.unwrap().read_to_string(&mut stderr).unwrap();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, stderr, elapsed, usage.ru_maxrss)
}

/// A PNG of 64 x 64 whose text chunk holds `len` bytes, written a block at a time (the test
/// itself must stay small: a child's peak memory counts its parent's at the moment it started).
fn png_with_large_text(path: &Path, len: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let small = png(64, 64, 64, &[]);
    let ihdr_end = 8 + 4 + 4 + 13 + 4;
    file.write_all(&small[..ihdr_end]).unwrap();
    let prefix = b"Comment\0";
    file.write_all(&((prefix.len() + len) as u32).to_be_bytes())
        .unwrap();
    file.write_all(b"tEXt").unwrap();
    let mut crc = flate2::Crc::new();
    crc.update(b"tEXt");
    file.write_all(prefix).unwrap();
    crc.update(prefix);
    let block = vec![b'x'; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        crc.update(&block[..n]);
        left -= n;
    }
    file.write_all(&crc.sum().to_be_bytes()).unwrap();
    file.write_all(&small[ihdr_end..]).unwrap();
}

/// This process's resident set, in KiB.
fn own_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn image_bombs_get_a_clear_error_and_cost_little() {
    let env = Env::new();
    // The store exists (an empty index), as it does on a deployment.
    assert!(env.run(&["db", "check"]).status.success());
    type Make = Box<dyn Fn(&Path)>;
    let bytes =
        |b: fn() -> Vec<u8>| -> Make { Box::new(move |p: &Path| std::fs::write(p, b()).unwrap()) };
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "declares 100,000 x 100,000 pixels",
            bytes(|| png(100_000, 100_000, 1, &[])),
            "too large",
        ),
        (
            "decompression bomb: 8,000 x 8,000 pixels of zeros in 190 KB",
            bytes(|| png(8000, 8000, 8000, &[])),
            "too large",
        ),
        (
            "a text chunk that inflates to 200 MB",
            bytes(|| {
                let mut text = b"Comment\0\0".to_vec();
                text.extend_from_slice(&deflated_zeros(200 << 20));
                png(64, 64, 64, &[(*b"zTXt", text)])
            }),
            "",
        ),
        (
            "a 40 MB text chunk",
            Box::new(|p: &Path| png_with_large_text(p, 40 << 20)),
            "",
        ),
        (
            "animated WebP declaring a 16,000 x 16,000 canvas, 10,000 frames",
            bytes(|| animated_webp(16_000, 10_000)),
            "",
        ),
        (
            "animated GIF of 2,000 frames",
            bytes(|| animated_gif(200, 2000)),
            "",
        ),
        (
            "ICO with an embedded PNG",
            bytes(ico_with_png),
            "not an image",
        ),
    ];
    println!(
        "(this test process: {} MB, counted in each peak below)",
        own_rss_kib() / 1024
    );
    println!("{:<66} {:>8} {:>8}  result", "image", "time", "memory");
    for (what, make, expect) in cases {
        let file = env.path("bomb.img");
        make(&file);
        let (code, stderr, elapsed, rss_kib) = run_match(&env, &file);
        let first = stderr.lines().last().unwrap_or("").to_string();
        println!(
            "{what:<66} {:>6} ms {:>5} MB  {}",
            elapsed.as_millis(),
            rss_kib / 1024,
            if code == 0 {
                "no match (decoded)"
            } else {
                first.as_str()
            }
        );
        assert!(
            rss_kib < MEMORY_BOUND_KIB,
            "{what}: peak memory {} MB",
            rss_kib / 1024
        );
        if !expect.is_empty() {
            assert_eq!(code, 1, "{what}: refused with an error:\n{stderr}");
            assert!(
                first.contains(expect) && first.contains("bomb.img"),
                "{what}: the error names the file and says why: {first}"
            );
        } else {
            // Either decoded within the limits (its first frame; text skipped) and matched
            // nothing, or refused with a one-line error naming the file.
            assert!(
                code == 0 || (code == 1 && first.contains("bomb.img")),
                "{what}: exit {code}: {stderr}"
            );
        }
    }
}

#[test]
fn an_upload_bomb_is_refused_while_the_site_is_served() {
    let env = Env::new();
    let addrs = env.configure_serve(
        "mode = \"demo\"",
        "[review]\ntoken = \"a-test-admin-token-0123456789\"\n",
    );
    let server = env.serve(addrs);
    let agent = http_agent();
    let base = format!("http://{}", addrs.admin);
    let r = agent
        .post(&format!("{base}/login"))
        .send_form([("name", "t"), ("token", "a-test-admin-token-0123456789")])
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = agent
        .get(&format!("{base}/match"))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &page[at..at + page[at..].find('"').unwrap()];
    // A multipart body by hand: the bomb as the file field.
    let bomb = png(60_000, 60_000, 1, &[]);
    let boundary = "fp-bomb-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"bomb.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&bomb);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let started = Instant::now();
    let mut r = agent
        .post(&format!("{base}/match"))
        .header("Cookie", &cookie)
        .header(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .send(&body[..])
        .unwrap();
    let elapsed = started.elapsed();
    let text = r.body_mut().read_to_string().unwrap();
    println!(
        "upload of a 60,000 x 60,000 PNG: {} ms",
        elapsed.as_millis()
    );
    assert_eq!(r.status(), 400, "{text}");
    assert!(
        text.contains("too large") && text.contains("was not stored"),
        "{text}"
    );
    let stored: i64 = env
        .db()
        .query_row("SELECT count(*) FROM found_images", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0, "nothing of it is kept");
    // The site and the probes go on.
    let page = common::fetch(&agent, &server.url("/")).unwrap();
    assert_eq!(page.status, 200);
    let health = common::fetch(&agent, &format!("{base}/healthz")).unwrap();
    assert_eq!(health.text().trim(), "ok");
}

/// The SHA-256 of a file, to tell that nothing wrote to it.
fn digest(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[test]
fn a_damaged_database_is_found_at_start_named_and_left_alone() {
    // Not a database at all.
    let env = Env::new();
    std::fs::create_dir_all(env.data_dir()).unwrap();
    let db = env.data_dir().join("faceprobe.db");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).unwrap();
    let before = digest(&db);
    let addrs = env.configure_serve("mode = \"demo\"", "");
    let _ = addrs;
    let out = env.run(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("faceprobe.db") && err.contains("not a database"),
        "{err}"
    );
    assert!(err.contains("backup"), "the message says what to do: {err}");
    assert_eq!(digest(&db), before, "the file is left as it was");

    // A real store, cut short (a copy interrupted, a disk that filled).
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", "");
    let mut server = env.serve(addrs);
    for i in 0..300 {
        let _ = common::fetch(
            &http_agent(),
            &server.url(&format!("/gallery/{}", i % 3 + 1)),
        );
    }
    server.terminate();
    let db = env.data_dir().join("faceprobe.db");
    let len = std::fs::metadata(&db).unwrap().len();
    let wal = std::fs::metadata(env.data_dir().join("faceprobe.db-wal")).map_or(0, |m| m.len());
    assert_eq!(
        wal, 0,
        "a stopped faceprobe leaves everything in the database file"
    );
    assert!(len > 3 * 4096, "the store has pages to lose ({len} bytes)");
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(len / 2 / 4096 * 4096).unwrap();
    drop(file);
    let before = digest(&db);
    let out = env.run(&["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a cut-off store is not served: {err}"
    );
    assert!(
        err.contains("faceprobe.db") && (err.contains("cut off") || err.contains("malformed")),
        "{err}"
    );
    assert_eq!(digest(&db), before, "the file is left as it was");
}

#[test]
fn tokens_never_minted_or_altered_are_not_served() {
    let env = Env::new();
    let addrs = env.configure_serve("mode = \"demo\"", "");
    let server = env.serve(addrs);
    let agent = http_agent();
    let page = common::fetch(&agent, &server.url("/")).unwrap().text();
    let (imgs, _) = common::img_and_link_urls(&page);
    let src = imgs
        .iter()
        .find(|s| s.starts_with("/_fp/c/"))
        .expect("a canary in the page");
    let token = common::canary_token(src).unwrap();
    // One character changed, anywhere in the token.
    let mut altered: Vec<char> = token.chars().collect();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    for path in [
        format!("/_fp/c/{altered}.jpg"),
        "/_fp/c/AaJMRdhKHxveWOPxpQNJC3npReziwg.jpg".to_string(),
        "/_fp/c/not-a-token.jpg".to_string(),
        format!("/_fp/c/{token}.png"),
        format!("/_fp/c/{}.jpg", "A".repeat(4000)),
        "/_fp/c/%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_string(),
    ] {
        let r = common::fetch(&agent, &server.url(&path)).unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert!(!common::is_whole_jpeg(&r.body), "{path}: no image");
    }
    let r = common::fetch(&agent, &server.url(src)).unwrap();
    assert_eq!(r.status, 200, "the minted token is served");
}

#[test]
fn hostile_agents_are_stored_verbatim_logged_one_record_per_line_and_shown_as_text_in_the_pdf() {
    let env = Env::new();
    // Heads up to 128 KiB, so that a 64 KB agent reaches the recorder.
    let addrs = env.configure_serve(
        "mode = \"demo\"\nmax_header_bytes = 131072",
        "[detect]\npoll_ms = 50\npersist_secs = 1\n",
    );
    let server = env.serve(addrs);
    // C1 controls a terminal obeys (CSI U+009B, NEL U+0085), a line separator (U+2028), a
    // bidirectional override, a template injection and markup: all valid UTF-8, which HTTP
    // lets through (obs-text), unlike C0 controls, which it refuses.
    let agent =
        "hostile \u{9b}31mred\u{85}next\u{2028}line \u{202e}txt.exe ${jndi:ldap://x/a} <script>";
    // The whole answer to a GET of `path` with `agent` (raw bytes: invalid UTF-8 too).
    let send_as = |agent: &[u8], path: &str| {
        let mut s = std::net::TcpStream::connect(addrs.public).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: site.test\r\nUser-Agent: ").into_bytes();
        head.extend_from_slice(agent);
        head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        s.write_all(&head).unwrap();
        let mut answer = Vec::new();
        use std::io::Read;
        let _ = s.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let send = |path: &str| {
        let answer = send_as(agent.as_bytes(), path);
        answer.lines().next().unwrap_or("").to_string()
    };
    assert!(send("/robots.txt").contains(" 200 "));
    common::wait_for_event(&env, "/robots.txt");
    let stored: String = env
        .db()
        .query_row(
            "SELECT user_agent FROM events_full WHERE path = '/robots.txt'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, agent, "stored verbatim");
    let start = Instant::now();
    let log = loop {
        let log = server.log_text();
        if log.contains("robots.txt fetched") {
            break log;
        }
        assert!(start.elapsed() < HANG, "no log line:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let line = log
        .lines()
        .find(|l| l.contains("robots.txt fetched"))
        .unwrap();
    assert!(
        line.contains("hostile \\u{9b}31mred\\u{85}next\\u{2028}line \\u{202e}txt.exe"),
        "{line}"
    );
    for c in ['\u{9b}', '\u{85}', '\u{2028}', '\u{202e}'] {
        assert!(!log.contains(c), "the log holds {c:?} as it was sent");
    }
    assert!(
        line.contains("${jndi:ldap://x/a} <script>"),
        "printable text as it is"
    );

    // Invalid UTF-8 is stored with each bad byte as U+FFFD (a TEXT column holds text), and a
    // 64 KB agent as its first 1 KiB (every recorded field's bound): the store's two
    // deliberate departures from "verbatim", both bounded and visible.
    let invalid = b"bad \xff\xfe utf8 \xc3(";
    assert!(send_as(invalid, "/robots.txt?invalid").contains(" 200 "));
    let long = format!("L{}", "x".repeat(64 * 1024));
    assert!(send_as(long.as_bytes(), "/robots.txt?long").contains(" 200 "));
    let robots_agents = || -> Vec<String> {
        env.db()
            .prepare("SELECT user_agent FROM events_full WHERE path = '/robots.txt' ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let start = Instant::now();
    let agents = loop {
        let agents = robots_agents();
        if agents.len() >= 3 {
            break agents;
        }
        assert!(
            start.elapsed() < HANG,
            "robots.txt events not committed: {agents:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(agents[1], String::from_utf8_lossy(invalid));
    assert_eq!(agents[2], long[..1024]);

    // The report of an evidence bundle shows the agent as text: what pdftotext extracts is
    // what was sent, its invisible characters written out as \u{..}.
    let page = send("/gallery/1?q=%22%3E%3Cscript%3E");
    assert!(page.contains(" 200 "), "{page}");
    let body = send_as(agent.as_bytes(), "/");
    let canary = common::img_and_link_urls(&body)
        .0
        .into_iter()
        .find(|u| common::canary_token(u).is_some())
        .expect("a canary on the page");
    let canary_path = canary.trim_start_matches("http://site.test");
    assert!(send(canary_path).contains(" 200 "));
    common::wait_for_event(&env, canary_path.split('?').next().unwrap());
    if common::tool_available("pdftotext", "apt-get install poppler-utils").is_none() {
        return;
    }
    let key: String = env
        .db()
        .query_row(
            "SELECT client_key FROM events_full WHERE user_agent = ?1 LIMIT 1",
            [agent],
            |r| r.get(0),
        )
        .unwrap();
    // The detector keeps the client (and its agent) once it has persisted its state.
    common::wait_for_client(&env, &server, false, "the hostile client", |c| {
        c["key"] == key.as_str()
    });
    let zip = env.path("hostile.zip");
    let out = env.run(&[
        "evidence",
        "build",
        "--client",
        &key,
        "--out",
        zip.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "evidence build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let shown = "hostile \\u{9b}31mred\\u{85}next\\u{2028}line \\u{202e}txt.exe ${jndi:ldap://x/a} <script>";
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    for name in ["report.pdf", "rapport.pdf"] {
        let index = (0..archive.len())
            .find(|&i| archive.by_index(i).unwrap().name().ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in the bundle"));
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_index(index).unwrap(), &mut bytes).unwrap();
        let pdf = env.path(name);
        std::fs::write(&pdf, &bytes).unwrap();
        let o = Command::new("pdftotext")
            .args(["-enc", "UTF-8"])
            .arg(&pdf)
            .arg("-")
            .output()
            .unwrap();
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            squeeze(&text).contains(&squeeze(shown)),
            "{name} does not show the agent as sent ({shown}):\n{text}"
        );
        for c in ['\u{9b}', '\u{85}', '\u{2028}', '\u{202e}'] {
            assert!(!text.contains(c), "{name} holds {c:?} as it was sent");
        }
    }
}
