//! `faceprobe config check`: reads the config file as `serve` would, and prints either the
//! effective configuration (every default filled in, secrets masked) or every problem in it.

use faceprobe::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// Exit 0 and the effective configuration on standard output when the file is good; exit 1
/// and each problem on standard error otherwise.
pub fn check(path: Option<&Path>) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            let source = match path {
                Some(p) => p.display().to_string(),
                None => "no config file: every default".to_string(),
            };
            println!("# faceprobe's effective configuration ({source}); secrets masked");
            print!("{}", config.to_toml_masked());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("faceprobe: {e}");
            ExitCode::FAILURE
        }
    }
}
