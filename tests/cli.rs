//! End-to-end tests of the `faceprobe` binary: `canary render`, `match`, `db check`.

mod common;

use common::Env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn decode(path: &Path) -> image::RgbImage {
    image::open(path).unwrap().to_rgb8()
}

#[test]
fn render_prints_one_line_per_image_and_writes_it() {
    let env = Env::new();
    let lines = env.render(3, None, "out");
    assert_eq!(lines.len(), 3);
    let mut tokens = std::collections::HashSet::new();
    for l in &lines {
        let token = l["token"].as_str().unwrap();
        assert_eq!(token.len(), 30);
        tokens.insert(token.to_string());
        let file = PathBuf::from(l["file"].as_str().unwrap());
        assert_eq!(
            file.file_name().unwrap().to_str().unwrap(),
            format!("{token}.jpg")
        );
        let img = decode(&file);
        assert_eq!(img.dimensions(), (256, 256));
        assert!(l["identity"].is_u64());
        assert_eq!(l["hashes"]["phash"].as_str().unwrap().len(), 16);
        assert!(l["hashes"]["scheme"].as_str().unwrap().starts_with("fp1"));
    }
    assert_eq!(tokens.len(), 3);
    let o = env.run(&["db", "check"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 tokens"));
}

#[test]
fn same_seed_renders_the_same_pixels_and_size_is_honoured() {
    let env = Env::new();
    let a = env.render(2, Some(42), "a");
    let b = env.render(2, Some(42), "b");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["identity"], y["identity"]);
        assert_ne!(x["token"], y["token"], "tokens are always fresh");
        let px = decode(Path::new(x["file"].as_str().unwrap()));
        let py = decode(Path::new(y["file"].as_str().unwrap()));
        assert_eq!(px.as_raw(), py.as_raw());
    }
    assert_eq!(a[0]["identity"], 42);
    assert_eq!(a[1]["identity"], 43);
    let out = env.path("big");
    let o = env.run(&[
        "canary",
        "render",
        "--count",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--size",
        "512",
    ]);
    assert!(o.status.success());
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        decode(Path::new(line["file"].as_str().unwrap())).dimensions(),
        (512, 512)
    );
}

#[test]
fn match_finds_marked_stripped_and_cropped_canaries() {
    let env = Env::new();
    let lines = env.render(12, None, "out");
    let first = &lines[0];
    let token = first["token"].as_str().unwrap();
    let served = PathBuf::from(first["file"].as_str().unwrap());

    // Intact: the XMP mark names the token.
    let (res, o) = env.match_json(&[&served]);
    assert!(o.status.success());
    assert_eq!(res[0]["matches"][0]["token"], token);
    assert_eq!(res[0]["matches"][0]["how"], "xmp");
    assert_eq!(res[0]["matches"][0]["confidence"], 1.0);
    assert!(res[0]["matches"][0]["fetches"]
        .as_array()
        .unwrap()
        .is_empty());

    // Stripped of metadata and re-encoded: only the pixels can say.
    let img = decode(&served);
    let stripped = env.path("stripped.png");
    img.save(&stripped).unwrap();
    // Cropped and shrunk.
    let cropped = env.path("cropped.jpg");
    image::imageops::resize(
        &image::imageops::crop_imm(&img, 20, 10, 216, 230).to_image(),
        150,
        160,
        image::imageops::FilterType::Triangle,
    )
    .save(&cropped)
    .unwrap();
    let (res, o) = env.match_json(&[&stripped, &cropped]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for r in &res {
        let m = &r["matches"][0];
        assert_eq!(m["token"], token, "{r}");
        assert_eq!(m["how"], "hash");
        assert!(m["confidence"].as_f64().unwrap() >= 0.5, "{r}");
    }
}

#[test]
fn an_unknown_face_is_no_match_not_an_error() {
    let env = Env::new();
    env.render(5, None, "minted");
    let other = Env::new();
    let lines = other.render(1, Some(987_654), "other");
    let file = PathBuf::from(lines[0]["file"].as_str().unwrap());
    let img = decode(&file);
    let plain = env.path("plain.png");
    img.save(&plain).unwrap();
    let (res, o) = env.match_json(&[&file, &plain]);
    assert!(o.status.success());
    assert_eq!(res.len(), 2);
    for r in res {
        assert_eq!(r["matches"], serde_json::json!([]), "{r}");
    }
    let o = env.run(&["match", plain.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no match"));
}

#[test]
fn bad_images_get_one_line_errors_naming_the_file() {
    let env = Env::new();
    let lines = env.render(1, None, "out");
    let good = PathBuf::from(lines[0]["file"].as_str().unwrap());
    let bytes = std::fs::read(&good).unwrap();

    let text = env.path("notes.txt");
    std::fs::write(&text, "hello, not an image").unwrap();
    let truncated = env.path("truncated.jpg");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let mut png_bytes = Vec::new();
    decode(&good)
        .write_to(
            &mut std::io::Cursor::new(&mut png_bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    let truncated_png = env.path("truncated.png");
    std::fs::write(&truncated_png, &png_bytes[..png_bytes.len() / 2]).unwrap();
    let empty = env.path("empty.png");
    std::fs::write(&empty, b"").unwrap();
    // A valid PNG header claiming 100000 × 100000 pixels.
    let huge = env.path("huge.png");
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend(100_000u32.to_be_bytes());
    png.extend(100_000u32.to_be_bytes());
    png.extend([8, 2, 0, 0, 0]);
    let crc = crc32(&png[12..]);
    png.extend(crc.to_be_bytes());
    std::fs::write(&huge, &png).unwrap();
    let missing = env.path("missing.jpg");

    for (bad, says) in [
        (&text, "not an image"),
        (&truncated, "truncated or corrupt"),
        (&truncated_png, "truncated or corrupt"),
        (&empty, "not an image"),
        (&huge, "too large"),
        (&missing, "cannot read"),
    ] {
        let (res, o) = env.match_json(&[bad, &good]);
        assert!(!o.status.success(), "{bad:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        let err_lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("faceprobe: match:"))
            .collect();
        assert_eq!(err_lines.len(), 1, "{err}");
        assert!(err_lines[0].contains(bad.to_str().unwrap()), "{err}");
        assert!(err_lines[0].contains(says), "{bad:?}: {err}");
        // The good image after it is still matched.
        assert_eq!(res.len(), 1);
        assert_eq!(res[0]["matches"][0]["how"], "xmp");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_faceprobe"))
        .arg("--config")
        .arg(&env.config)
        .args(["canary", "render", "--count", "20", "--out"])
        .arg(env.path("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the first line, as `faceprobe … | head -0` does.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

#[test]
fn bad_config_is_a_clear_error() {
    let env = Env::new();
    std::fs::write(&env.config, "[canary]\njpeg_quality = 0\n").unwrap();
    let o = env.run(&["db", "check"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("canary.jpeg_quality") && err.contains("1 to 100"),
        "{err}"
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
