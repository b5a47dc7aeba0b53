//! `faceprobe serve`: not built yet; says so plainly instead of pretending.

use anyhow::bail;
use faceprobe::config::Config;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Upstream site to proxy (proxy mode).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub fn run(_config: &Config, _args: Args) -> anyhow::Result<ExitCode> {
    bail!(
        "serve is not available in this build yet (the edge is the next milestone); \
         `faceprobe canary render` and `faceprobe match` work now"
    )
}
