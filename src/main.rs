//! The `faceprobe` command line: parses arguments, loads the config, runs one command and
//! reports its errors. Each command lives in `src/cmd/`; the work itself is in the library.

mod cmd;

// The edge allocates per request (headers, events); glibc's allocator spent a tenth of the
// edge's time in consolidation and trimming under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "faceprobe",
    version,
    about = "Catch face-harvesting crawlers with synthetic canary faces"
)]
struct Cli {
    /// Config file (default: none, every option at its documented default).
    #[arg(long, global = true, env = "FACEPROBE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve beside a website (proxy, embed or demo mode).
    Serve(cmd::serve::Args),
    /// Canary faces.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Trace images back to the tokens and fetches they came from.
    Match(cmd::matching::Args),
    /// Clients and clusters the detector noticed; dismiss a flag.
    Clients(cmd::clients::Args),
    /// Evidence bundles: build one for a client or cluster, verify one.
    #[command(subcommand)]
    Evidence(EvidenceCommand),
    /// The signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The database.
    #[command(subcommand)]
    Db(DbCommand),
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the config file: print the effective configuration (secrets masked), or every
    /// problem in it (exit 1).
    Check,
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Build the signed evidence bundle of a client or cluster (opens a case).
    Build(cmd::evidence::BuildArgs),
    /// Check a bundle: signature, hashes, chain, checkpoints, commitments, canaries.
    Verify(cmd::evidence::VerifyArgs),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the public key (OpenSSH), an allowed_signers line and the fingerprint.
    Show,
}

#[derive(Subcommand)]
enum CanaryCommand {
    /// Mint tokens and write their images exactly as they would be served.
    Render(cmd::render::Args),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Check the database's integrity, its hash chain and its signed checkpoints.
    Check(cmd::db::CheckArgs),
    /// Copy the database while faceprobe serves (SQLite's online backup) into FILE.
    Backup(cmd::db::BackupArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Its own exit status: 1 for a bad file, where the other commands exit 2 before running.
    if let Command::Config(ConfigCommand::Check) = cli.command {
        return cmd::config::check(cli.config.as_deref());
    }
    let config = match faceprobe::config::Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("faceprobe: {e}");
            return ExitCode::from(2);
        }
    };
    faceprobe::logging::init(&config.log);
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(&config, args),
        Command::Canary(CanaryCommand::Render(args)) => cmd::render::run(&config, args),
        Command::Match(args) => cmd::matching::run(&config, args),
        Command::Clients(args) => cmd::clients::run(&config, args),
        Command::Evidence(EvidenceCommand::Build(args)) => cmd::evidence::build(&config, args),
        Command::Evidence(EvidenceCommand::Verify(args)) => cmd::evidence::verify(args),
        Command::Key(KeyCommand::Show) => cmd::key::show(&config),
        Command::Db(DbCommand::Check(args)) => cmd::db::check(&config, args),
        Command::Db(DbCommand::Backup(args)) => cmd::db::backup(&config, args),
        Command::Config(ConfigCommand::Check) => {
            unreachable!("handled before the config is loaded")
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faceprobe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command whose output goes into `| head` ends quietly when the reader leaves, as other Unix
/// tools do, rather than panicking on the closed pipe. Not for `serve`: a client closing its
/// connection must never stop the server.
fn quiet_on_closed_pipe() {
    // SAFETY: called before any other thread exists; restores the default disposition.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
