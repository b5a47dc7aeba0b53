//! `faceprobe key show`: the signing key's public forms.

use faceprobe::config::Config;
use faceprobe::store::signing::SigningKey;
use std::process::ExitCode;

pub fn show(config: &Config) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&config.store.data_dir)?;
    let key = SigningKey::load_or_create(
        &config.store.data_dir,
        config.evidence.signing_key.as_deref(),
    )?;
    println!("{}", key.public_line());
    println!("{}", key.allowed_signers());
    println!("{}", key.fingerprint());
    eprintln!(
        "(key file {}; the site publishes the first line at {}{})",
        key.path.display(),
        config.evidence.site.trim_end_matches('/'),
        faceprobe::edge::KEY_PATH
    );
    Ok(ExitCode::SUCCESS)
}
