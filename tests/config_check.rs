//! `faceprobe config check` end to end: the binary on a good file, a bad one and one with
//! secrets.

use faceprobe::config::Config;
use std::path::Path;
use std::process::{Command, Output};

fn config_check(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faceprobe"))
        .args(["config", "check", "--config"])
        .arg(file)
        .env_remove("FACEPROBE_CONFIG")
        .output()
        .unwrap()
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let file = dir.path().join("faceprobe.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn the_documented_file_is_valid_and_printed_as_itself() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/faceprobe.toml");
    let o = config_check(&file);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let printed = String::from_utf8(o.stdout).unwrap();
    for line in [
        "[serve]",
        "listen = \"127.0.0.1:8080\"",
        "[detect.signals.gallery_depth]",
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line} not in\n{printed}"
        );
    }
    let read_back = Config::parse(&printed, Path::new("printed")).expect("prints valid TOML");
    assert_eq!(read_back, Config::default());
}

#[test]
fn a_bad_file_exits_1_naming_every_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "[serve]\nupstream = \"https://site.example\"\n\
         [canary]\njpeg_quality = 0\nsise = 3\n\
         [alert]\nlevel = \"loud\"\n",
    );
    let o = config_check(&file);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stdout.is_empty(),
        "nothing is printed as the configuration"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("4 problems"), "{err}");
    for key in [
        "serve.upstream = \"https://site.example\"",
        "canary.jpeg_quality = 0",
        "canary.sise = 3",
        "alert.level = \"loud\"",
    ] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(key)),
            "{key} not in\n{err}"
        );
    }
}

#[test]
fn webhook_secrets_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "[alert]\nsecret = \"hmac-k3y\"\n\
         webhooks = [\"https://ops:pa55@hooks.example.org/faceprobe?token=t0ken\"]\n",
    );
    let o = config_check(&file);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let printed = String::from_utf8(o.stdout).unwrap();
    for secret in ["hmac-k3y", "pa55", "t0ken"] {
        assert!(!printed.contains(secret), "{secret} shown in\n{printed}");
    }
    assert!(
        printed.contains("webhooks = [\"https://***@hooks.example.org/faceprobe?***\"]"),
        "{printed}"
    );
}
