//! The deployment's signing key: Ed25519, in OpenSSH's format, created at first run in the data
//! directory (mode 0600) or imported from an existing OpenSSH key file.
//!
//! It signs the chain's checkpoints as they happen and every evidence bundle's manifest, as
//! OpenSSH signatures ("SSHSIG") that `ssh-keygen -Y verify` checks. The site publishes the
//! public half at `/.well-known/faceprobe-key.pub`, which ties the key to the domain.

use super::StoreError;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};

const FILE: &str = "signing_key";

/// Namespace of a bundle manifest's signature.
pub const NAMESPACE_EVIDENCE: &str = "faceprobe-evidence";
/// Namespace of a checkpoint's signature.
pub const NAMESPACE_CHECKPOINT: &str = "faceprobe-checkpoint";
/// The principal name in `allowed_signers`.
pub const PRINCIPAL: &str = "faceprobe";

/// Why a key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot sign: {0}")]
    Sign(String),
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> StoreError {
        StoreError::Secret {
            path: match &e {
                KeyError::File { path, .. } => path.clone(),
                KeyError::Sign(_) => PathBuf::new(),
            },
            message: e.to_string(),
        }
    }
}

/// The key that signs, with the public forms every verifier needs.
pub struct SigningKey {
    private: PrivateKey,
    /// Where it was read from.
    pub path: PathBuf,
}

impl SigningKey {
    /// The key in `import` when given (an existing OpenSSH Ed25519 key), else the one in
    /// `dir`, created on first use.
    pub fn load_or_create(dir: &Path, import: Option<&Path>) -> Result<SigningKey, KeyError> {
        match import {
            Some(path) => read(path),
            None => {
                let path = dir.join(FILE);
                if !path.exists() {
                    create(&path)?;
                }
                read(&path)
            }
        }
    }

    /// The public key as one OpenSSH line (`ssh-ed25519 AAAA… faceprobe`).
    pub fn public_line(&self) -> String {
        public_line(self.private.public_key())
    }

    /// The line of an `allowed_signers` file that `ssh-keygen -Y verify` reads.
    pub fn allowed_signers(&self) -> String {
        self.public().allowed_signers()
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.private
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    /// An armored OpenSSH signature of `message` in `namespace`.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> Result<String, KeyError> {
        let sig = self
            .private
            .sign(namespace, HashAlg::Sha512, message)
            .map_err(|e| KeyError::Sign(e.to_string()))?;
        sig.to_pem(LineEnding::LF)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }

    pub fn public_key(&self) -> &PublicKey {
        self.private.public_key()
    }

    /// Its public forms.
    pub fn public(&self) -> Public {
        Public::of(self.private.public_key())
    }
}

/// A key's public forms: what a bundle names a signer by, for this instance's key or one
/// another instance shipped to the fleet store.
#[derive(Debug, Clone, PartialEq)]
pub struct Public {
    /// The OpenSSH line (`ssh-ed25519 AAAA… faceprobe`).
    pub line: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

impl Public {
    fn of(key: &PublicKey) -> Public {
        Public {
            line: public_line(key),
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        }
    }

    /// Reads an OpenSSH public key line.
    pub fn parse(line: &str) -> Result<Public, String> {
        PublicKey::from_openssh(line.trim())
            .map(|k| Public::of(&k))
            .map_err(|e| format!("the public key does not parse: {e}"))
    }

    /// The line of an `allowed_signers` file that `ssh-keygen -Y verify` reads.
    pub fn allowed_signers(&self) -> String {
        format!(
            "{PRINCIPAL} namespaces=\"{NAMESPACE_EVIDENCE},{NAMESPACE_CHECKPOINT}\" {}",
            self.line
        )
    }
}

/// The OpenSSH line of a public key, with faceprobe's comment.
fn public_line(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment(PRINCIPAL);
    k.to_openssh().unwrap_or_default()
}

/// Checks an armored signature of `message` in `namespace` against the public key given as an
/// OpenSSH line; `Err` says why it does not hold.
pub fn verify(
    public_line: &str,
    namespace: &str,
    message: &[u8],
    armored: &str,
) -> Result<(), String> {
    let key = PublicKey::from_openssh(public_line.trim())
        .map_err(|e| format!("the public key does not parse: {e}"))?;
    let sig = SshSig::from_pem(armored.trim())
        .map_err(|e| format!("the signature does not parse: {e}"))?;
    if sig.namespace() != namespace {
        return Err(format!(
            "the signature is for namespace {:?}, not {namespace:?}",
            sig.namespace()
        ));
    }
    key.verify(namespace, message, &sig).map_err(|_| {
        "the signature does not match (the signed content or the key differs)".to_string()
    })
}

fn read(path: &Path) -> Result<SigningKey, KeyError> {
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!(
            "{e} (set evidence.signing_key to a readable OpenSSH key, or unset it)"
        ))
    })?;
    let private = PrivateKey::from_openssh(text.trim_end())
        .map_err(|e| err(format!("not an OpenSSH private key: {e}")))?;
    if private.is_encrypted() {
        return Err(err(
            "is protected by a passphrase; faceprobe signs unattended: give an unencrypted copy \
             (ssh-keygen -p -N '' -f COPY)"
                .into(),
        ));
    }
    if private.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(err(format!(
            "is a {} key; faceprobe signs with Ed25519 (ssh-keygen -t ed25519)",
            private.algorithm()
        )));
    }
    Ok(SigningKey {
        private,
        path: path.to_path_buf(),
    })
}

/// Writes a new key beside its final name, then links it there, so two processes starting at
/// once end with one key.
fn create(path: &Path) -> Result<(), KeyError> {
    use std::io::Write;
    let err = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let private = PrivateKey::new(ssh_key::private::KeypairData::Ed25519(pair), PRINCIPAL)
        .map_err(|e| err(e.to_string()))?;
    let text = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(format!(
            "{e} (set store.data_dir to a writable directory)"
        )));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_owner_only_mode_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::load_or_create(dir.path(), None).unwrap();
        let b = SigningKey::load_or_create(dir.path(), None).unwrap();
        assert_eq!(a.public_line(), b.public_line());
        assert!(
            a.public_line().starts_with("ssh-ed25519 "),
            "{}",
            a.public_line()
        );
        assert!(a.fingerprint().starts_with("SHA256:"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = a.sign(NAMESPACE_EVIDENCE, b"manifest").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"));
        verify(&a.public_line(), NAMESPACE_EVIDENCE, b"manifest", &sig).unwrap();
        let wrong_ns = verify(&a.public_line(), NAMESPACE_CHECKPOINT, b"manifest", &sig);
        assert!(wrong_ns.unwrap_err().contains("namespace"));
        assert!(verify(&a.public_line(), NAMESPACE_EVIDENCE, b"manifesT", &sig).is_err());
        let other = tempfile::tempdir().unwrap();
        let c = SigningKey::load_or_create(other.path(), None).unwrap();
        assert!(verify(&c.public_line(), NAMESPACE_EVIDENCE, b"manifest", &sig).is_err());
    }

    #[test]
    fn an_existing_openssh_key_is_imported_and_a_bad_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let made = SigningKey::load_or_create(dir.path(), None).unwrap();
        let other = tempfile::tempdir().unwrap();
        let imported =
            SigningKey::load_or_create(other.path(), Some(&dir.path().join(FILE))).unwrap();
        assert_eq!(made.public_line(), imported.public_line());
        assert!(!other.path().join(FILE).exists(), "no second key is made");
        let bad = other.path().join("bad");
        std::fs::write(&bad, "not a key").unwrap();
        let e = SigningKey::load_or_create(other.path(), Some(&bad))
            .err()
            .unwrap();
        assert!(e.to_string().contains("not an OpenSSH private key"), "{e}");
    }
}
