//! Shared by the end-to-end tests: a temporary data directory with its config file, and the
//! `faceprobe` binary run against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A config file and data directory of their own.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("faceprobe.toml");
        let data = dir.path().join("data");
        std::fs::write(
            &config,
            format!("[store]\ndata_dir = {:?}\n", data.to_str().unwrap()),
        )
        .unwrap();
        Env { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_faceprobe"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    pub fn render(&self, count: u32, seed: Option<u64>, out: &str) -> Vec<serde_json::Value> {
        let count = count.to_string();
        let out = self.path(out);
        let mut args = vec![
            "canary",
            "render",
            "--count",
            &count,
            "--out",
            out.to_str().unwrap(),
        ];
        let seed_text;
        if let Some(s) = seed {
            seed_text = s.to_string();
            args.extend(["--seed", &seed_text]);
        }
        let o = self.run(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn match_json(&self, files: &[&Path]) -> (Vec<serde_json::Value>, Output) {
        let mut args = vec!["match", "--json"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        let o = self.run(&args);
        let lines = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines, o)
    }
}
